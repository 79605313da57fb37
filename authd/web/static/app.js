// Reference pages for the authd login API (docs/api.yaml). Plain DOM, no
// framework. Everything from the server goes into the page as text
// (textContent), never as markup.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { challenge: '', methods: [], forced: false, recovery: false };

// ApiError carries the API's error code and its message for people.
class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { 'Content-Type': 'application/json' } };
  if (body !== undefined) opts.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch('/api/v1' + path, opts);
  } catch (e) {
    throw new ApiError('network', 'The device cannot be reached: ' + e.message, 0);
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(err.code || 'http', err.message || 'The request failed (HTTP ' + res.status + ').', res.status);
  }
  return data || {};
}

function say(id, text) {
  const el = $(id);
  el.textContent = text || '';
  el.hidden = !text;
}
const showError = (text) => say('error', text);
const showNotice = (text) => say('notice', text);

function show(view) {
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== 'view-' + view;
  const first = $('view-' + view).querySelector('input:not([hidden]):not([type=checkbox]), button');
  if (first) first.focus();
}

// Runs a form's action with its button disabled, showing any API error.
// Errors that mean the session is gone or restricted move to the right page.
function onSubmit(formId, action) {
  const form = $(formId);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    showError('');
    try {
      await action();
    } catch (e) {
      handle(e);
    } finally {
      button.disabled = false;
    }
  });
}

function handle(e) {
  if (!(e instanceof ApiError)) {
    showError(String(e && e.message ? e.message : e));
    return;
  }
  if (e.code === 'unauthorized' || e.code === 'challenge_expired') {
    show('login');
  } else if (e.code === 'password_change_required') {
    openPassword(true);
  } else if (e.code === 'enroll_required') {
    openEnrol(true).catch(handle);
  }
  showError(e.message);
}

function click(id, action) {
  $(id).addEventListener('click', () => {
    showError('');
    showNotice('');
    Promise.resolve().then(action).catch(handle);
  });
}

// next moves on after a login step, following the API's status.
async function next(status) {
  switch (status) {
    case 'password_change_required':
      return openPassword(true);
    case 'enroll_required':
      return openEnrol(true);
    case 'otp_required':
      return openCode();
    default:
      return openAccount();
  }
}

async function start() {
  try {
    const me = await api('GET', '/me');
    await next(me.session_status);
  } catch (e) {
    if (e.code === 'unauthorized') show('login');
    else handle(e);
  }
}

onSubmit('form-login', async () => {
  showNotice('');
  const pass = $('login-pass');
  const res = await api('POST', '/login', { username: $('login-user').value, password: pass.value }).finally(() => {
    pass.value = '';
  });
  state.challenge = res.challenge || '';
  state.methods = res.methods || [];
  await next(res.status);
});

function openCode() {
  setRecovery(false);
  $('code-input').value = '';
  $('code-trust').checked = false;
  $('code-trust-more').hidden = true;
  $('code-email-row').hidden = !state.methods.includes('email');
  show('code');
}

function setRecovery(on) {
  state.recovery = on;
  const input = $('code-input');
  input.inputMode = on ? 'text' : 'numeric';
  input.autocomplete = on ? 'off' : 'one-time-code';
  $('code-label').textContent = on ? 'Recovery code (XXXX-XXXX-XXXX) or emailed code' : '6-digit code from your authenticator app';
  $('code-recovery').textContent = on ? 'Use the authenticator app instead' : 'Use a recovery code instead';
}

$('code-trust').addEventListener('change', () => {
  $('code-trust-more').hidden = !$('code-trust').checked;
});
click('code-recovery', () => {
  setRecovery(!state.recovery);
  $('code-input').focus();
});
click('code-cancel', () => show('login'));
click('code-email', async () => {
  const res = await api('POST', '/login/emergency', { challenge: state.challenge });
  const mins = Math.round((res.valid_seconds || 600) / 60);
  showNotice('A code was sent to ' + res.sent_to + '. Enter it below; it is valid for ' + mins + ' minutes.');
  $('code-label').textContent = 'Code from the email';
  $('code-input').focus();
});

onSubmit('form-code', async () => {
  const input = $('code-input');
  const code = input.value.trim();
  const body = { challenge: state.challenge, code: /^[0-9 ]+$/.test(code) ? code.replace(/ /g, '') : code };
  if ($('code-trust').checked) {
    body.trust_device = true;
    body.device_name = $('code-device').value.trim();
  }
  try {
    const res = await api('POST', '/login/otp', body);
    state.challenge = '';
    showNotice('');
    await next(res.status);
  } catch (e) {
    input.value = '';
    input.focus();
    throw e;
  }
});

function openPassword(forced) {
  state.forced = forced;
  for (const id of ['password-current', 'password-new', 'password-repeat']) $(id).value = '';
  $('password-why').textContent = forced
    ? 'This password must be changed before you go on.'
    : 'Choose a new password for this account.';
  $('password-cancel').textContent = forced ? 'Log out' : 'Cancel';
  show('password');
}

onSubmit('form-password', async () => {
  const pw = $('password-new').value;
  if (pw !== $('password-repeat').value) throw new Error('The new passwords do not match.');
  if ([...pw].length < 8) throw new Error('The new password needs at least 8 characters.');
  const res = await api('PUT', '/me/password', { current_password: $('password-current').value, new_password: pw });
  showNotice('The password was changed.');
  await next(res.status);
});
click('password-cancel', () => (state.forced ? logout() : openAccount()));

// openEnrol starts an enrolment: forced (just after the password, the
// policy requires it) or from the account page, where the password is asked
// again (password, from the setup form).
async function openEnrol(forced, password) {
  state.forced = forced;
  const res = await api('POST', '/me/2fa/enroll', forced ? undefined : { password: password });
  const png = String(res.qr_png || '');
  $('enrol-qr').src = /^[A-Za-z0-9+/]+=*$/.test(png) ? 'data:image/png;base64,' + png : '';
  $('enrol-secret').textContent = res.secret_grouped || res.secret || '';
  const link = $('enrol-link');
  const uri = String(res.otpauth_uri || '');
  link.hidden = !uri.startsWith('otpauth://');
  if (!link.hidden) link.href = uri;
  say('enrol-warning', res.warning);
  $('enrol-code').value = '';
  $('enrol-cancel').textContent = forced ? 'Log out' : 'Cancel';
  show('enrol');
}

onSubmit('form-enrol', async () => {
  const res = await api('POST', '/me/2fa/verify', { code: $('enrol-code').value.replace(/\s/g, '') });
  showCodes(res.recovery_codes);
});
click('enrol-cancel', () => (state.forced ? logout() : openAccount()));

function showCodes(codes) {
  const list = $('codes-list');
  list.replaceChildren();
  for (const c of codes || []) {
    const li = document.createElement('li');
    li.textContent = c;
    list.append(li);
  }
  show('codes');
}
click('codes-done', () => openAccount());

async function openAccount() {
  const me = await api('GET', '/me');
  if (me.session_status && me.session_status !== 'ok') return next(me.session_status);
  $('acct-name').textContent = me.name;
  $('acct-role').textContent = me.role;
  $('acct-2fa').textContent = me.two_factor ? 'on' : me.two_factor_required ? 'off (required)' : 'off';
  $('acct-left').textContent = String(me.recovery_codes_left);
  for (const id of ['acct-left-label', 'acct-left', 'acct-codes', 'acct-disable', 'acct-devices']) $(id).hidden = !me.two_factor;
  $('acct-setup').hidden = me.two_factor;
  if (me.two_factor) await loadDevices();
  show('account');
}

function when(s) {
  const d = new Date(s);
  return isNaN(d) ? '' : d.toLocaleString();
}

async function loadDevices() {
  const res = await api('GET', '/me/devices');
  const list = $('devices-list');
  list.replaceChildren();
  const devices = res.devices || [];
  for (const d of devices) {
    const li = document.createElement('li');
    const name = document.createElement('strong');
    name.textContent = d.name + (d.current ? ' (this device)' : '');
    const info = document.createElement('span');
    info.textContent = 'last used ' + when(d.last_used) + ' from ' + d.last_address + ', until ' + when(d.expires);
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.textContent = 'Revoke';
    revoke.setAttribute('aria-label', 'Revoke ' + d.name);
    revoke.addEventListener('click', () => {
      showError('');
      api('DELETE', '/me/devices/' + encodeURIComponent(d.id))
        .then(() => {
          showNotice('Device revoked: ' + d.name);
          return loadDevices();
        })
        .catch(handle);
    });
    li.append(name, info, revoke);
    list.append(li);
  }
  $('devices-none').hidden = devices.length > 0;
  $('devices-revoke-all').hidden = devices.length === 0;
}

click('devices-revoke-all', async () => {
  const res = await api('DELETE', '/me/devices');
  showNotice('Devices revoked: ' + res.revoked);
  await loadDevices();
});
click('acct-setup', () => {
  $('setup-pass').value = '';
  show('setup');
});
onSubmit('form-setup', async () => {
  const pass = $('setup-pass');
  const password = pass.value;
  pass.value = '';
  await openEnrol(false, password);
});
click('acct-password', () => openPassword(false));
click('acct-logout', () => logout());
click('acct-codes', () => {
  $('regen-pass').value = '';
  show('regen');
});
click('acct-disable', () => {
  $('disable-pass').value = '';
  $('disable-code').value = '';
  show('disable');
});
for (const b of document.querySelectorAll('[data-back]')) b.addEventListener('click', () => openAccount().catch(handle));

onSubmit('form-regen', async () => {
  const pass = $('regen-pass');
  const res = await api('POST', '/me/2fa/recovery-codes', { password: pass.value }).finally(() => {
    pass.value = '';
  });
  showCodes(res.recovery_codes);
});

onSubmit('form-disable', async () => {
  const pass = $('disable-pass');
  const code = $('disable-code').value.trim();
  await api('DELETE', '/me/2fa', { password: pass.value, code: /^[0-9 ]+$/.test(code) ? code.replace(/ /g, '') : code }).finally(() => {
    pass.value = '';
  });
  showNotice('Two-factor authentication is off.');
  await openAccount();
});

async function logout() {
  await api('POST', '/logout');
  state.challenge = '';
  showNotice('You are logged out.');
  show('login');
}

start();
