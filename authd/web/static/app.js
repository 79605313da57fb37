// Pages for the authd login API (docs/api.yaml). Plain DOM, no framework.
// Everything from the server goes into the page as text (textContent),
// never as markup; the sentences people read are the pages' own, chosen by
// the API's stable error codes.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  challenge: '',
  methods: [],
  forced: false,
  recovery: false,
  me: null,
  device: null,
  deviceAt: 0, // browser time (ms) when device.time was read
  failedLogins: 0,
  stepUpRetry: null, // the action to run again after a step-up
  stepUpFrom: '',
  auditPages: [], // the "before" ids of the pages behind the current one
  auditBefore: 0,
  netTimer: 0,
  portsTimer: 0,
};

// ApiError carries the API's error code, status and details.
class ApiError extends Error {
  constructor(code, message, status, extra) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfter = (extra && extra.retry_after) || 0;
    this.locked = (extra && extra.locked) || '';
  }
}

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { 'Content-Type': 'application/json' } };
  if (body !== undefined) opts.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch('/api/v1' + path, opts);
  } catch (e) {
    throw new ApiError('network', '', 0);
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    // The device's own words, for whoever looks closer (a support
    // request, a test that fails): the page shows its sentence.
    document.documentElement.dataset.lastApiError = method + ' ' + path + ': ' + res.status + ' ' + (err.code || '') + ': ' + (err.message || '');
    throw new ApiError(err.code || 'http', err.message || '', res.status, err);
  }
  return data || {};
}

// h makes an element: h('li', {class: 'x'}, 'text', child, ...).
function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'onclick') el.addEventListener('click', v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

function say(id, text) {
  const el = $(id);
  el.textContent = text || '';
  el.hidden = !text;
}
const showNotice = (text) => say('notice', text);

// showError shows a message that belongs to no field, and moves the focus
// to it so that a screen reader reads it and the keyboard starts there.
function showError(text) {
  say('error', text);
  if (text) $('error').focus();
}

function when(s) {
  const d = new Date(s);
  return !s || isNaN(d) ? '' : d.toLocaleString();
}

function utc(d) {
  return d.toISOString().slice(11, 19) + ' UTC';
}

function duration(seconds) {
  if (seconds < 90) return seconds + (seconds === 1 ? ' second' : ' seconds');
  const m = Math.round(seconds / 60);
  if (m < 90) return m + ' minutes';
  return Math.round(m / 60) + ' hours';
}

// ---- sentences ---------------------------------------------------------

// Field labels for messages about a field the API names.
const FIELD_NAMES = {
  new_password: 'The new password',
  current_password: 'The current password',
  password: 'The password',
  name: 'The name',
  email: 'The email address',
  host: 'The server',
  port: 'The port',
  from: 'The sender address',
  to: 'The address',
  allow_list: 'The list',
  ntp_servers: 'The server list',
  hostname: 'The device name',
  dns: 'The DNS servers',
  time: 'The time',
  ca_pem: 'The certificate',
};

// detail turns the API's description of a bad field into a sentence.
function detail(text) {
  let t = String(text || '').replace(/^(password does not meet the policy|invalid name|invalid address): /, '').trim();
  if (!t) return '';
  t = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(t) ? t : t + '.';
}

const MAIL_REASONS = {
  not_configured: 'No mail server is set up yet: an administrator sets one up on the Mail page.',
  connection_refused: 'The mail server refused the connection: check the server and the port.',
  connection_failed: 'The mail server cannot be reached: check the server name and this device\'s network.',
  timeout: 'The mail server did not answer in time.',
  tls_failed: 'The encrypted connection to the mail server failed: check the encryption setting and its certificate.',
  auth_failed: 'The mail server refused the username or password. Gmail and Outlook need an app password, not the account\'s own password.',
  rejected: 'The mail server refused the mail: check the sender and the recipient.',
  invalid_message: 'That email address is not valid.',
  failed: 'The mail could not be sent.',
};

// sentence says what went wrong, in the pages' words. ctx adjusts it to
// the form it happened in.
function sentence(e, ctx) {
  ctx = ctx || {};
  if (!(e instanceof ApiError)) return String((e && e.message) || e);
  if (ctx[e.code]) return typeof ctx[e.code] === 'function' ? ctx[e.code](e) : ctx[e.code];
  switch (e.code) {
    case 'invalid_credentials':
      return 'The password is not right.';
    case 'invalid_code':
      return 'That code is not right. Type the code your app shows now.';
    case 'code_reused':
      return 'That code was just used. Wait until the app shows the next one (at most 30 seconds), then type it.';
    case 'clock_not_synchronized':
      return 'That code was not accepted.';
    case 'passkey_copied':
      return 'This passkey counted backwards, so a copy of it may exist. Sign in another way, then remove the passkey.';
    case 'challenge_expired':
      return 'This sign-in took too long. Sign in again.';
    case 'locked':
      if (e.locked === 'client') return 'Too many wrong attempts from this address: it is blocked for ' + duration(e.retryAfter) + '.';
      if (e.locked === 'account')
        return 'This account is locked for ' + duration(e.retryAfter) + ' after too many wrong attempts. A trusted browser can still sign in.';
      return e.retryAfter > 1 ? 'Too many requests: try again in ' + duration(e.retryAfter) + '.' : 'Too many attempts at once: wait a moment and try again.';
    case 'unauthorized':
      return 'You are signed out. Sign in again.';
    case 'forbidden':
      return 'Only an administrator may do this.';
    case 'step_up_required':
      return 'Confirm with your password first.';
    case 'not_found':
      return 'That is not there any more.';
    case 'conflict':
      return 'That name is taken already.';
    case 'busy':
      return e.retryAfter ? 'The device is busy with other sign-ins. Try again in a few seconds.' : 'The device does not run this part.';
    case 'mail_failed': {
      const reason = e.message.split(':')[0];
      return MAIL_REASONS[reason] || MAIL_REASONS.failed;
    }
    case 'bad_request':
      if (e.status === 413) return 'That is too much text.';
      return detail(e.message.replace(/^[a-z_0-9]+(\[[\w.:-]+\])?(\.[a-z_0-9]+)?(\[\d+\])?: /, '')) || 'Something in the form is not valid.';
    case 'wrong_host':
      return 'The device does not answer to this name. Open it by its address.';
    case 'network':
      return 'The device cannot be reached. Check the network connection and try again.';
    case 'internal':
      return 'Something went wrong on the device. Its log says more.';
    case 'storage_full':
      return 'Nothing was changed: the device\'s storage for accounts and settings is full. Its log says more.';
    case 'storage_failed':
      return 'Nothing was changed: the device could not write its storage for accounts and settings. Restart the NAS, then try again.';
  }
  return 'The request failed.';
}

// badField returns the field a bad_request message starts with: "email",
// "dns[1]" or "interfaces[0].addresses[2]".
function badField(e) {
  if (!(e instanceof ApiError) || e.code !== 'bad_request') return '';
  const m = /^([a-z_0-9]+(?:\[[\w.:-]+\])?(?:\.[a-z_0-9]+)?)(?:\[\d+\])?: /.exec(e.message);
  return m ? m[1] : '';
}

// findField finds the input of a field path in form: a name, or a name
// inside an element of a list (data-list="interfaces"), chosen by its
// position or by its data-name ("interfaces[end0].addresses").
function findField(form, path) {
  const m = /^([a-z_0-9]+)(?:\[([\w.:-]+)\])?(?:\.([a-z_0-9]+))?/.exec(path || '');
  if (!m) return null;
  if (m[3]) {
    const items = [...form.querySelectorAll('[data-list="' + m[1] + '"]')];
    const item = /^\d+$/.test(m[2] || '0') ? items[Number(m[2] || 0)] : items.find((i) => i.dataset.name === m[2]);
    return item ? item.querySelector('[name="' + m[3] + '"]') : null;
  }
  return form.querySelector('[name="' + m[1] + '"]');
}

// ---- field messages ----------------------------------------------------

function clearFieldErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) p.remove();
  for (const i of form.querySelectorAll('[aria-invalid]')) {
    i.removeAttribute('aria-invalid');
    const ids = (i.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && id !== i.id + '-error');
    if (ids.length) i.setAttribute('aria-describedby', ids.join(' '));
    else i.removeAttribute('aria-describedby');
  }
}

// fieldError puts text under the field, ties it to the field for screen
// readers and moves the focus there.
function fieldError(input, text) {
  const msg = h('p', { class: 'field-error', id: input.id + '-error' }, text);
  const anchor = input.closest('.row, fieldset') || input;
  const hint = anchor.nextElementSibling && anchor.nextElementSibling.classList.contains('hint') ? anchor.nextElementSibling : anchor;
  hint.after(msg);
  input.setAttribute('aria-invalid', 'true');
  const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
  input.setAttribute('aria-describedby', [input.id + '-error', ...ids].join(' '));
  input.focus();
  if (input.select && input.type !== 'checkbox' && input.type !== 'radio') input.select();
}

function formError(form, text) {
  const button = form.querySelector('button:not([type=button])') || form.lastElementChild;
  const msg = h('p', { class: 'field-error form-error', id: form.id + '-error', tabindex: '-1', role: 'alert' }, text);
  button.before(msg);
  msg.focus();
}

// fail shows e on form: under the field it concerns, or above the button.
// fields maps error codes to the field they concern in this form.
function fail(form, e, opts) {
  opts = opts || {};
  if (e instanceof ApiError) {
    if (e.code === 'unauthorized' || e.code === 'challenge_expired') {
      show('login');
      showError(sentence(e, opts.sentences));
      return;
    }
    if (e.code === 'password_change_required') return openPassword(true);
    if (e.code === 'enroll_required') return openWizard(true).catch(handle);
  }
  let text = sentence(e, opts.sentences);
  if (opts.extra) text += opts.extra(e) || '';
  const name = badField(e) || (e instanceof ApiError && opts.fields ? opts.fields[e.code] : '') || (e && e.field) || '';
  const input = findField(form, name);
  if (input && input.offsetParent !== null) fieldError(input, text);
  else formError(form, text);
  if (e instanceof ApiError && e.code === 'locked' && e.retryAfter > 1) countdown(form, e);
}

// countdown keeps a lockout message true as time passes.
function countdown(form, e) {
  const msg = form.querySelector('.field-error');
  if (!msg) return;
  const end = Date.now() + e.retryAfter * 1000;
  const base = msg.textContent;
  const tick = () => {
    if (!msg.isConnected) return;
    const left = Math.ceil((end - Date.now()) / 1000);
    if (left <= 0) {
      msg.textContent = 'You can try again now.';
      return;
    }
    msg.textContent = base.replace(/for [^.:]+\./, 'for ' + duration(left) + '.').replace(/in [^.:]+\.$/, 'in ' + duration(left) + '.');
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

// A FieldProblem is a mistake the page finds before asking the device.
class FieldProblem extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

// onSubmit runs a form's action with its button busy and shows any error
// under its field. A change that needs a fresh step-up asks for it and
// then runs again.
function onSubmit(formId, action, opts) {
  const form = $(formId);
  const run = async () => {
    const button = form.querySelector('button:not([type=button])');
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    clearFieldErrors(form);
    showError('');
    let failed = null;
    try {
      await action();
    } catch (e) {
      failed = e;
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
    if (failed instanceof ApiError && failed.code === 'step_up_required') {
      openStepUp(run);
      return;
    }
    if (failed) fail(form, failed, typeof opts === 'function' ? opts() : opts);
  };
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    showNotice('');
    run();
  });
}

// clearUnlessStepUp empties a password field after a failed request,
// except when the change asks for a step-up first: the form repeats the
// request after it, with the password still typed.
function clearUnlessStepUp(input) {
  return (e) => {
    if (!(e instanceof ApiError && e.code === 'step_up_required')) input.value = '';
    throw e;
  };
}

// handle shows an error that belongs to no form.
function handle(e) {
  if (e instanceof ApiError) {
    if (e.code === 'unauthorized' || e.code === 'challenge_expired') show('login');
    else if (e.code === 'password_change_required') return openPassword(true);
    else if (e.code === 'enroll_required') return openWizard(true).catch(handle);
  }
  showError(sentence(e));
}

function click(id, action) {
  $(id).addEventListener('click', () => {
    showError('');
    showNotice('');
    Promise.resolve().then(action).catch(handle);
  });
}

// confirmInBox replaces a destructive button with a question and two
// buttons; only the second click acts.
function confirmInBox(boxId, question, yes, action) {
  const box = $(boxId);
  const original = [...box.childNodes];
  const restore = () => {
    box.replaceChildren(...original);
    original[0].focus && original[0].focus();
  };
  const go = h('button', { type: 'button', class: 'danger' }, yes);
  const no = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  go.addEventListener('click', () => {
    showError('');
    Promise.resolve()
      .then(action)
      .then(() => box.isConnected && box.replaceChildren(...original))
      .catch((e) => {
        box.replaceChildren(...original);
        if (e instanceof ApiError && e.code === 'step_up_required') openStepUp(action);
        else handle(e);
      });
  });
  no.addEventListener('click', restore);
  box.replaceChildren(h('p', { class: 'question' }, question), h('p', { class: 'buttons' }, go, no));
  go.focus();
}

// ---- views and navigation ------------------------------------------------

const WIDE = new Set(['users', 'user', 'groups', 'policy', 'security', 'mail', 'time', 'network', 'audit', 'system', 'account']);
const ADMIN = new Set(['users', 'user', 'groups', 'policy', 'security', 'mail', 'time', 'network', 'audit', 'system']);

function show(view) {
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== 'view-' + view;
  document.body.classList.toggle('wide', WIDE.has(view));
  const full = state.me && state.me.session_status === 'ok' && view !== 'login' && view !== 'code';
  $('nav').hidden = !full;
  for (const li of document.querySelectorAll('[data-admin]')) li.hidden = !(state.me && state.me.role === 'admin');
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === (view === 'user' ? 'users' : view)) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view === 'login' || view === 'code') state.me = null;
  // The sign-in page's offers (a passkey alone) follow the policy of now.
  if (view === 'login') loadDevice();
  const title = $('view-' + view).querySelector('h1');
  document.title = (title ? title.textContent + ' · ' : '') + deviceName();
  const first = $('view-' + view).querySelector('input:not([hidden]):not([type=checkbox]):not([type=radio]):not([readonly])');
  if (first && first.offsetParent !== null && ['login', 'code', 'password', 'stepup', 'setup', 'regen', 'disable'].includes(view)) first.focus();
  else if (title) {
    title.tabIndex = -1;
    title.focus();
  }
}

function deviceName() {
  return (state.device && state.device.name) || 'NAS';
}

async function loadDevice() {
  try {
    const t0 = Date.now();
    state.device = await api('GET', '/device');
    state.deviceAt = (t0 + Date.now()) / 2;
  } catch (e) {
    state.device = null;
  }
  $('device-name').textContent = deviceName();
  $('forgot-reset').textContent = forgotText();
  $('login-passkey-row').hidden = !(state.device && state.device.passkey_sign_in && passkeysSupported());
}

// deviceNow is the device's clock as of now, from the last /device answer.
function deviceNow() {
  if (!state.device) return null;
  const t = new Date(state.device.time).getTime();
  return isNaN(t) ? null : new Date(t + (Date.now() - state.deviceAt));
}

function forgotText() {
  const d = state.device || {};
  const r = d.reset_button || {};
  const c = d.serial_console;
  let s = 'The admin account: ';
  if (r.present) {
    s += 'at the device, hold the RESET button on the back for ' + r.hold_seconds + ' seconds, until the LED blinks fast, then let go (before ' + r.cancel_seconds +
      ' seconds). The admin account gets back the default password printed on the device\'s label, without two-factor authentication or security email, and the network goes back to DHCP. Other accounts and all data stay.';
  } else {
    s += 'this device has no RESET button that the firmware watches.';
  }
  if (c && c.device) s += ' The rescue console on the serial port (' + c.baud + ' baud) can reset it too.';
  return s;
}

// clockNote explains a refused code when the device's clock is the likely
// cause: it differs from this computer's by more than a code's lifetime.
async function clockNote(e) {
  if (!(e instanceof ApiError) || !['invalid_code', 'clock_not_synchronized'].includes(e.code)) return '';
  await loadDevice();
  const dev = deviceNow();
  if (!dev) return '';
  const skew = Math.round((dev.getTime() - Date.now()) / 1000);
  if (Math.abs(skew) < 45) return '';
  return ' The device\'s clock reads ' + utc(dev) + ', this computer\'s ' + utc(new Date()) + ' (' + duration(Math.abs(skew)) + (skew > 0 ? ' ahead' : ' behind') +
    '): codes fail while they differ. An administrator fixes the time on the Time page; without a way in, use "set-clock" on the rescue console.';
}

function showDeviceTime(id) {
  const dev = deviceNow();
  $(id).textContent = dev ? 'The device\'s time: ' + utc(dev) + ' (' + dev.toLocaleTimeString() + ' here).' : '';
}

function route() {
  const view = location.hash.replace(/^#/, '').split('/')[0];
  if (!state.me || state.me.session_status !== 'ok') return;
  const open = OPENERS[view] || OPENERS.account;
  if (ADMIN.has(view) && state.me.role !== 'admin') return openAccount().catch(handle);
  Promise.resolve()
    .then(() => open(decodeURIComponent(location.hash.split('/')[1] || '')))
    .catch(handle);
}
// A link to the page already shown loads it again (no hashchange comes).
for (const a of document.querySelectorAll('#nav a')) {
  a.addEventListener('click', () => {
    if (a.getAttribute('href') === location.hash) {
      showError('');
      showNotice('');
      route();
    }
  });
}
window.addEventListener('hashchange', () => {
  showError('');
  showNotice('');
  route();
});

// next moves on after a login step, following the API's status.
async function next(status) {
  if (status !== 'otp_required') state.me = await api('GET', '/me');
  switch (status) {
    case 'password_change_required':
      return openPassword(true);
    case 'enroll_required':
      return openWizard(true);
    case 'otp_required':
      return openCode();
    default:
      if (location.hash && location.hash !== '#account' && location.hash !== '#') return route();
      return openAccount();
  }
}

async function start() {
  await loadDevice();
  try {
    state.me = await api('GET', '/me');
    await next(state.me.session_status);
  } catch (e) {
    if (e instanceof ApiError && e.code === 'unauthorized') show('login');
    else handle(e);
  }
}

// ---- sign-in -----------------------------------------------------------

onSubmit(
  'form-login',
  async () => {
    const user = $('login-user');
    const pass = $('login-pass');
    if (!user.value.trim()) throw new FieldProblem('username', 'Type your username.');
    if (!pass.value) throw new FieldProblem('password', 'Type your password.');
    let res;
    try {
      res = await api('POST', '/login', { username: user.value.trim(), password: pass.value });
    } catch (e) {
      if (e instanceof ApiError && e.code === 'invalid_credentials') state.failedLogins++;
      throw e;
    } finally {
      pass.value = '';
    }
    state.failedLogins = 0;
    state.challenge = res.challenge || '';
    state.methods = res.methods || [];
    await next(res.status);
  },
  () => ({
    fields: { invalid_credentials: 'password', locked: 'password' },
    sentences: {
      invalid_credentials: () =>
        'The username or password is not right.' +
        (state.failedLogins >= 3 ? ' After 5 wrong tries in 5 minutes, this address is blocked for 5 minutes.' : ''),
    },
  }),
);

function openCode() {
  setRecovery(false);
  $('code-input').value = '';
  $('code-trust').checked = false;
  $('code-trust-more').hidden = true;
  $('code-email-row').hidden = !state.methods.includes('email');
  const passkey = state.methods.includes('passkey') && passkeysSupported();
  const codes = state.methods.includes('totp');
  $('code-passkey-row').hidden = !passkey;
  $('code-passkey-trust').checked = false;
  $('form-code').hidden = !codes && state.methods.includes('passkey');
  $('code-recovery').parentElement.hidden = !codes;
  showDeviceTime('code-time');
  show('code');
  if (passkey && !codes) $('code-passkey').focus();
}

function setRecovery(on) {
  state.recovery = on;
  const input = $('code-input');
  input.inputMode = on ? 'text' : 'numeric';
  input.autocomplete = on ? 'off' : 'one-time-code';
  $('code-label').textContent = on ? 'Recovery code (XXXX-XXXX-XXXX) or the code from the email' : '6-digit code from your authenticator app';
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
  showNotice('A code was sent to ' + res.sent_to + '. Type it below; it works for ' + mins + ' minutes.');
  setRecovery(true);
  $('form-code').hidden = false;
  $('code-label').textContent = 'Code from the email';
  $('code-input').focus();
});

let codeClockNote = '';
onSubmit(
  'form-code',
  async () => {
    const input = $('code-input');
    const code = input.value.trim();
    if (!code) throw new FieldProblem('code', 'Type the code.');
    const body = { challenge: state.challenge, code: /^[0-9 ]+$/.test(code) ? code.replace(/ /g, '') : code };
    if ($('code-trust').checked) {
      body.trust_device = true;
      body.device_name = $('code-device').value.trim();
    }
    codeClockNote = '';
    try {
      const res = await api('POST', '/login/otp', body);
      state.challenge = '';
      showNotice('');
      await next(res.status);
    } catch (e) {
      input.value = '';
      codeClockNote = await clockNote(e);
      showDeviceTime('code-time');
      throw e;
    }
  },
  () => ({
    fields: { invalid_code: 'code', code_reused: 'code', clock_not_synchronized: 'code', locked: 'code' },
    sentences: {
      invalid_code: () => (state.recovery ? 'That code is not right, or it was used already.' : 'That code is not right. Type the code your app shows now.') + codeClockNote,
      clock_not_synchronized: () => 'That code is not right. Type the code your app shows now.' + codeClockNote,
    },
  }),
);

// ---- password ----------------------------------------------------------

function openPassword(forced) {
  state.forced = forced;
  for (const id of ['password-current', 'password-new', 'password-repeat']) $(id).value = '';
  $('password-user').value = (state.me && state.me.name) || $('login-user').value || '';
  const first = forced && state.me && state.me.name === 'admin' && state.me.must_change_password;
  $('password-why').textContent = forced
    ? 'This account\'s password must be changed before you go on.'
    : 'Choose a new password for this account. Other browsers signed in to it are signed out.';
  $('password-current-label').textContent = first ? 'Current password (the default one, from the device\'s label)' : 'Current password';
  $('password-cancel').textContent = forced ? 'Sign out' : 'Cancel';
  $('password-apps').checked = false;
  $('password-apps-row').hidden = forced;
  show('password');
}

onSubmit(
  'form-password',
  async () => {
    const pw = $('password-new').value;
    if (!$('password-current').value) throw new FieldProblem('current_password', 'Type the current password.');
    if ([...pw].length < 8) throw new FieldProblem('new_password', 'The new password needs at least 8 characters.');
    if (pw !== $('password-repeat').value) throw new FieldProblem('repeat', 'The two new passwords are not the same.');
    const body = { current_password: $('password-current').value, new_password: pw };
    if ($('password-apps').checked && !$('password-apps-row').hidden) body.revoke_app_passwords = true;
    const res = await api('PUT', '/me/password', body);
    for (const id of ['password-current', 'password-new', 'password-repeat']) $(id).value = '';
    showNotice('The password was changed.');
    await next(res.status);
  },
  { fields: { invalid_credentials: 'current_password' }, sentences: { invalid_credentials: 'The current password is not right.' } },
);
click('password-cancel', () => (state.forced ? signOut() : openAccount()));

// ---- the 2FA setup wizard --------------------------------------------------

function wizardStep(n) {
  for (const li of document.querySelectorAll('#wizard-steps li')) {
    const s = Number(li.dataset.step);
    li.classList.toggle('done', s < n);
    if (s === n) li.setAttribute('aria-current', 'step');
    else li.removeAttribute('aria-current');
  }
  for (const p of document.querySelectorAll('#view-wizard [data-panel]')) p.hidden = Number(p.dataset.panel) !== n;
  $('enrol-cancel').hidden = n >= 4;
  const panel = document.querySelector('#view-wizard [data-panel="' + n + '"]');
  const heading = panel.querySelector('h2');
  const input = panel.querySelector('input');
  if (input && n !== 5) input.focus();
  else {
    heading.tabIndex = -1;
    heading.focus();
  }
}

// openWizard starts an enrolment: forced (the policy requires it; right
// after the password step) or from the account page, with the password
// asked again.
async function openWizard(forced, password) {
  state.forced = forced;
  const res = await api('POST', '/me/2fa/enroll', forced ? undefined : { password: password });
  if (!state.me) state.me = await api('GET', '/me').catch(() => null);
  const png = String(res.qr_png || '');
  $('enrol-qr').src = /^[A-Za-z0-9+/]+=*$/.test(png) ? 'data:image/png;base64,' + png : '';
  const secret = $('enrol-secret');
  secret.replaceChildren(...String(res.secret_grouped || res.secret || '').split(' ').map((g, i) => h('span', {}, (i ? ' ' : '') + g)));
  secret.dataset.secret = res.secret || '';
  $('enrol-account').textContent = deviceName() + ':' + ((state.me && state.me.name) || '');
  const link = $('enrol-link');
  const uri = String(res.otpauth_uri || '');
  link.hidden = !uri.startsWith('otpauth://');
  if (!link.hidden) link.href = uri;
  say('enrol-warning', res.warning ? 'This device\'s clock is not confirmed by a time server: if the codes are refused, an administrator sets the time on the Time page.' : '');
  $('enrol-code').value = '';
  $('enrol-cancel').textContent = forced ? 'Sign out' : 'Cancel';
  $('wizard-passkey-row').hidden = !(forced && passkeysSupported());
  show('wizard');
  wizardStep(1);
}

click('wizard-next-1', () => wizardStep(2));
click('wizard-next-2', () => {
  showDeviceTime('enrol-time');
  wizardStep(3);
});

// copy puts text on the clipboard; where the browser allows no clipboard
// (plain HTTP), it selects the text for the person to copy.
async function copy(text, el, what) {
  try {
    await navigator.clipboard.writeText(text);
    showNotice(what + ' copied.');
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    showNotice(what + ' selected: press Ctrl+C (or Cmd+C) to copy.');
  }
}
// ---- passkeys ------------------------------------------------------------------

function passkeysSupported() {
  return !!(window.PublicKeyCredential && PublicKeyCredential.parseCreationOptionsFromJSON && navigator.credentials);
}

// A PasskeyProblem is the browser's refusal (cancelled, timed out, no
// authenticator), said in the page's words.
class PasskeyProblem extends Error {}

async function browserPasskey(make, options) {
  try {
    const cred = make
      ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) })
      : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
    return cred.toJSON();
  } catch (e) {
    if (e && e.name === 'InvalidStateError') throw new PasskeyProblem('This passkey is on the account already.');
    if (e && e.name === 'SecurityError') throw new PasskeyProblem('The browser refused a passkey for this address: open the page by the device\'s name.');
    throw new PasskeyProblem(make ? 'No passkey was made: it was cancelled or timed out.' : 'No passkey was used: it was cancelled, timed out, or none is on this device.');
  }
}

// addPasskey registers a passkey for the signed-in account (password: for
// a full session; none in a forced enrolment) and returns the API's answer.
async function addPasskey(name, password) {
  const begin = await api('POST', '/me/passkeys/register', password ? { password: password } : undefined);
  const credential = await browserPasskey(true, begin.options);
  return api('POST', '/me/passkeys', { ceremony: begin.ceremony, name: name, credential: credential });
}

async function passkeyLogin(challenge, trust) {
  const begin = await api('POST', '/login/passkey', challenge ? { challenge: challenge } : undefined);
  const credential = await browserPasskey(false, begin.options);
  const body = { ceremony: begin.ceremony, credential: credential };
  if (trust) body.trust_device = true;
  return api('POST', '/login/passkey/finish', body);
}

click('login-passkey', async () => {
  try {
    const res = await passkeyLogin('', false);
    await next(res.status);
  } catch (e) {
    showError(e instanceof PasskeyProblem ? e.message : sentence(e, { invalid_credentials: 'This passkey does not sign in here alone: sign in with the password, then turn passkey sign-in on in your account.' }));
  }
});

click('code-passkey', async () => {
  try {
    const res = await passkeyLogin(state.challenge, $('code-passkey-trust').checked);
    state.challenge = '';
    await next(res.status);
  } catch (e) {
    if (e instanceof ApiError && (e.code === 'challenge_expired' || e.code === 'unauthorized')) return handle(e);
    showError(e instanceof PasskeyProblem ? e.message : sentence(e, { invalid_code: 'The passkey was not accepted. Try again, or use another way.' }));
  }
});

click('wizard-passkey', async () => {
  try {
    const res = await addPasskey('', '');
    state.me = await api('GET', '/me');
    showNotice('The passkey is added: it is your second step from now on.');
    await next(res.status);
  } catch (e) {
    if (e instanceof PasskeyProblem) showError(e.message);
    else handle(e);
  }
});

async function loadPasskeys() {
  const res = await api('GET', '/me/passkeys');
  const list = res.passkeys || [];
  // A passkey is bound to a name: opened by address, the page says which
  // name to use instead of offering what would fail.
  const byAddress = /^[0-9.]+$|^\[/.test(location.hostname);
  $('passkey-rp').textContent = location.hostname;
  $('passkey-rp-row').hidden = byAddress;
  const local = state.device && state.device.local_name;
  say('passkey-by-address', byAddress ? 'This page is open by the address ' + location.hostname + ': to add or use a passkey, open it by the device\'s name' +
    (local ? ', ' + local : '') + '.' : '');
  $('passkeys-list').replaceChildren(
    ...list.map((p) => {
      const box = h('div', { class: 'confirm', id: 'passkey-box-' + p.id });
      const rename = h('button', { type: 'button', class: 'secondary small', 'aria-label': 'Rename the passkey ' + p.name }, 'Rename');
      const remove = h('button', { type: 'button', class: 'danger small', 'aria-label': 'Remove the passkey ' + p.name }, 'Remove…');
      rename.addEventListener('click', () => {
        const input = h('input', { id: 'passkey-rename-' + p.id, maxlength: 64, value: p.name });
        const save = h('button', { type: 'button', class: 'small' }, 'Save name');
        save.addEventListener('click', () =>
          api('PATCH', '/me/passkeys/' + encodeURIComponent(p.id), { name: input.value })
            .then(() => loadPasskeys())
            .then(() => showNotice('Renamed.'))
            .catch(handle),
        );
        box.replaceChildren(h('label', { for: input.id }, 'New name'), input, h('p', { class: 'buttons' }, save));
        input.focus();
      });
      remove.addEventListener('click', () => {
        const input = h('input', { id: 'passkey-remove-pass-' + p.id, type: 'password', autocomplete: 'current-password' });
        const go = h('button', { type: 'button', class: 'danger small' }, 'Remove ' + p.name);
        const removeIt = () =>
          api('DELETE', '/me/passkeys/' + encodeURIComponent(p.id), { password: input.value })
            .then(() => openAccount())
            .then(() => showNotice('Removed: ' + p.name + '.'));
        go.addEventListener('click', () =>
          removeIt().catch((e) => {
            if (e instanceof ApiError && e.code === 'step_up_required') openStepUp(removeIt);
            else if (e instanceof ApiError && e.code === 'invalid_credentials') fieldError(input, 'The password is not right.');
            else handle(e);
          }),
        );
        box.replaceChildren(h('label', { for: input.id }, 'Your password, to remove ' + p.name), input, h('p', { class: 'buttons' }, go));
        input.focus();
      });
      box.append(h('p', { class: 'buttons' }, rename, remove));
      return h('li', {}, h('strong', {}, p.name),
        h('span', {}, 'For ' + p.rp_id + '. Made ' + when(p.created) + '. ' + (p.last_used ? 'Last used ' + when(p.last_used) + '.' : 'Not used yet.') +
          (p.synced ? ' Copied to your other devices by its password manager.' : '')), box);
    }),
  );
  $('passkeys-none').hidden = list.length > 0;
  $('form-passkey-signin').hidden = !(res.sign_in_allowed && list.length > 0);
  $('passkey-signin').checked = !!res.sign_in;
  $('form-passkey').hidden = !passkeysSupported() || byAddress;
}
onSubmit(
  'form-passkey',
  async () => {
    const pass = $('passkey-pass');
    const res = await addPasskey($('passkey-name').value.trim(), pass.value).catch(clearUnlessStepUp(pass));
    pass.value = '';
    $('passkey-name').value = '';
    await openAccount();
    showNotice('Passkey added: ' + res.passkey.name + '.');
  },
  { fields: { invalid_credentials: 'password', locked: 'password', bad_request: 'name' } },
);
onSubmit(
  'form-passkey-signin',
  async () => {
    const on = $('passkey-signin').checked;
    await api('PUT', '/me/passkeys/sign-in', { enabled: on, password: $('passkey-signin-pass').value }).finally(() => {
      $('passkey-signin-pass').value = '';
    });
    showNotice(on ? 'A passkey alone now signs you in.' : 'Signing in needs the password again.');
  },
  { fields: { invalid_credentials: 'password', locked: 'password' } },
);

click('copy-account', () => copy($('enrol-account').textContent, $('enrol-account'), 'The account name'));
click('copy-secret', () => copy($('enrol-secret').dataset.secret, $('enrol-secret'), 'The key'));

let enrolClockNote = '';
onSubmit(
  'form-enrol',
  async () => {
    const code = $('enrol-code').value.replace(/\s/g, '');
    if (!/^[0-9]{6}$/.test(code)) throw new FieldProblem('code', 'Type the 6 digits the app shows.');
    enrolClockNote = '';
    let res;
    try {
      res = await api('POST', '/me/2fa/verify', { code: code });
    } catch (e) {
      enrolClockNote = await clockNote(e);
      showDeviceTime('enrol-time');
      throw e;
    }
    fillCodes('codes-list', res.recovery_codes);
    state.me = await api('GET', '/me');
    wizardStep(4);
  },
  () => ({
    fields: { invalid_code: 'code', clock_not_synchronized: 'code', code_reused: 'code' },
    sentences: {
      invalid_code: () => 'That code is not right. Check that the app shows the account ' + $('enrol-account').textContent + ', and type the code it shows now.' + enrolClockNote,
      clock_not_synchronized: () => 'That code is not right. Type the code the app shows now.' + enrolClockNote,
      challenge_expired: 'The setup took longer than 15 minutes. Start it again.',
    },
  }),
);
click('enrol-cancel', () => (state.forced ? signOut() : openAccount()));

function fillCodes(listId, codes) {
  const list = $(listId);
  list.replaceChildren(...(codes || []).map((c) => h('li', {}, c)));
}
click('codes-copy', () => {
  const codes = [...document.querySelectorAll('#codes-list li')].map((li) => li.textContent);
  return copy(codes.join('\n'), $('codes-list'), 'The recovery codes');
});
click('codes-done', () => {
  if (state.me && state.me.security_email_verified) return openAccount();
  $('form-wizard-email').hidden = false;
  $('form-wizard-email-code').hidden = true;
  $('wizard-email').value = '';
  $('wizard-email-pass').value = '';
  wizardStep(5);
});
click('wizard-skip-email', () => openAccount());
onSubmit(
  'form-wizard-email',
  async () => {
    const res = await api('PUT', '/me/security-email', { email: $('wizard-email').value.trim(), password: $('wizard-email-pass').value });
    $('wizard-email-pass').value = '';
    showNotice('A code was sent to ' + res.sent_to + '.');
    $('form-wizard-email-code').hidden = false;
    $('wizard-email-code').value = '';
    $('wizard-email-code').focus();
  },
  { fields: { invalid_credentials: 'password', mail_failed: 'email' } },
);
onSubmit(
  'form-wizard-email-code',
  async () => {
    await api('POST', '/me/security-email/verify', { code: $('wizard-email-code').value.trim() });
    showNotice('The security email is confirmed.');
    await openAccount(true);
  },
  { fields: { invalid_code: 'code' }, sentences: { invalid_code: 'That code is not right. Type the code from the newest email.' } },
);

// ---- step-up -------------------------------------------------------------

function openStepUp(retry) {
  state.stepUpRetry = retry;
  state.stepUpFrom = [...document.querySelectorAll('main > section')].find((s) => !s.hidden).id.replace('view-', '');
  const twofa = !!(state.me && state.me.authenticator);
  const passkey = !twofa && !!(state.me && state.me.passkeys);
  $('stepup-code-row').hidden = !twofa;
  $('stepup-code-why').hidden = !twofa && !passkey;
  $('stepup-code-why').textContent = passkey ? ' and your passkey' : ' and a code';
  $('stepup-pass').value = '';
  $('stepup-code').value = '';
  show('stepup');
}
onSubmit(
  'form-stepup',
  async () => {
    const code = $('stepup-code').value.trim();
    const body = { password: $('stepup-pass').value };
    if (state.me && state.me.authenticator) body.code = /^[0-9 ]+$/.test(code) ? code.replace(/ /g, '') : code;
    else if (state.me && state.me.passkeys) {
      if (!body.password) throw new FieldProblem('password', 'Type your password.');
      const begin = await api('POST', '/me/step-up/passkey');
      body.passkey = { ceremony: begin.ceremony, credential: await browserPasskey(false, begin.options) };
    }
    await api('POST', '/me/step-up', body);
    $('stepup-pass').value = '';
    const retry = state.stepUpRetry;
    state.stepUpRetry = null;
    show(state.stepUpFrom);
    if (retry) await retry();
  },
  { fields: { invalid_credentials: 'password', invalid_code: 'code', code_reused: 'code', clock_not_synchronized: 'code', locked: 'password' } },
);
click('stepup-cancel', () => {
  state.stepUpRetry = null;
  show(state.stepUpFrom);
});

// ---- my account ------------------------------------------------------------

async function openAccount(keepNotice) {
  const me = await api('GET', '/me');
  state.me = me;
  if (me.session_status && me.session_status !== 'ok') return next(me.session_status);
  if (location.hash !== '#account') history.replaceState(null, '', '#account');
  $('acct-name').textContent = me.name;
  $('acct-role').textContent = me.role === 'admin' ? 'Administrator' : 'User';
  $('acct-2fa').textContent = twofaText(me).replace('not set up yet', 'set it up now');
  $('acct-left').textContent = String(me.recovery_codes_left);
  $('acct-email').textContent = me.security_email || 'None';
  for (const id of ['acct-left-label', 'acct-left', 'acct-codes', 'acct-disable']) $(id).hidden = !me.authenticator;
  $('acct-devices').hidden = !me.two_factor;
  $('acct-setup').hidden = me.authenticator;
  $('acct-setup').textContent = me.two_factor ? 'Add an authenticator app' : 'Set up two-factor authentication';
  $('form-email-code').hidden = true;
  $('email-address').value = '';
  $('email-pass').value = '';
  if (me.two_factor) await loadDevices();
  await loadSessions('sessions-list', '/me/sessions', () => loadSessions('sessions-list', '/me/sessions'));
  await loadApps();
  await loadPasskeys();
  $('app-admin-row').hidden = me.role !== 'admin';
  $('app-made').hidden = true;
  show('account');
  if (!keepNotice) return;
}

// loadSessions lists where an account is signed in (path: its sessions
// route), each with a button that ends it; reload lists again after one.
async function loadSessions(listId, path, reload) {
  const res = await api('GET', path);
  const list = res.sessions || [];
  $(listId).replaceChildren(
    ...list.map((x) =>
      h(
        'li',
        {},
        h('strong', {}, x.browser + (x.current ? ' (this browser)' : '')),
        h('span', {}, 'Signed in ' + when(x.created) + ' from ' + x.address + ', last active ' + when(x.last_seen) + '.' +
          (x.restricted ? ' Not finished: a new password or 2FA setup is due.' : '')),
        h('button', {
          type: 'button',
          class: 'secondary small',
          'aria-label': (x.current ? 'Sign out here' : 'Sign out ' + x.browser + ' from ' + x.address),
          onclick: () => {
            showError('');
            const end = async () => {
              await api('DELETE', path + '/' + encodeURIComponent(x.id));
              if (x.current) {
                state.me = null;
                history.replaceState(null, '', location.pathname);
                show('login');
                showNotice('You are signed out.');
                return;
              }
              if (reload) await reload();
              showNotice('Signed out: ' + x.browser + ' from ' + x.address + '.');
            };
            end().catch((e) => (e instanceof ApiError && e.code === 'step_up_required' ? openStepUp(end) : handle(e)));
          },
        }, x.current ? 'Sign out here' : 'Sign out'),
      ),
    ),
  );
  const none = $(listId + '-none');
  if (none) none.hidden = list.length > 0;
}

async function loadApps() {
  const res = await api('GET', '/me/app-passwords');
  const list = res.app_passwords || [];
  const scopeText = { read: 'read', admin: 'administer' };
  $('apps-list').replaceChildren(
    ...list.map((a) => {
      const box = h('div', { class: 'confirm', id: 'app-del-' + a.id });
      box.append(
        h('button', {
          type: 'button',
          class: 'danger small',
          'aria-label': 'Revoke the app password ' + a.name,
          onclick: () =>
            confirmInBox(box.id, a.name + ' will be refused from its next request.', 'Revoke', async () => {
              await api('DELETE', '/me/app-passwords/' + encodeURIComponent(a.id));
              await loadApps();
  await loadPasskeys();
              showNotice('Revoked: ' + a.name + '.');
            }),
        }, 'Revoke…'),
      );
      return h('li', {}, h('strong', {}, a.name),
        h('span', {}, 'May ' + ['read', 'admin'].filter((x) => a.scopes.includes(x)).map((x) => scopeText[x]).join(' and ') + '. Made ' + when(a.created) + '. ' +
          (a.last_used ? 'Last used ' + when(a.last_used) + ' from ' + a.last_address + '.' : 'Never used.')), box);
    }),
  );
  $('apps-none').hidden = list.length > 0;
}
onSubmit(
  'form-app',
  async () => {
    const name = $('app-name').value.trim();
    if (!name) throw new FieldProblem('name', 'Name the program, so that you know what to revoke later.');
    const scopes = [];
    if ($('app-read').checked) scopes.push('read');
    if ($('app-admin').checked && !$('app-admin-row').hidden) scopes.push('admin');
    if (!scopes.length) throw new FieldProblem('name', 'Allow it at least to read.');
    const res = await api('POST', '/me/app-passwords', { name: name, scopes: scopes, password: $('app-pass').value }).finally(() => {
      $('app-pass').value = '';
    });
    $('app-name').value = '';
    await loadApps();
  await loadPasskeys();
    $('app-token').textContent = res.token;
    $('app-made').hidden = false;
    $('app-copy').focus();
  },
  { fields: { invalid_credentials: 'password', locked: 'password', conflict: 'name' }, sentences: { conflict: 'You have 20 app passwords already: revoke one first.' } },
);
click('app-copy', () => copy($('app-token').textContent, $('app-token'), 'The app password'));

async function loadDevices() {
  const res = await api('GET', '/me/devices');
  const devices = res.devices || [];
  $('devices-list').replaceChildren(
    ...devices.map((d) =>
      h(
        'li',
        {},
        h('strong', {}, d.name + (d.current ? ' (this browser)' : '')),
        h('span', {}, 'Last used ' + when(d.last_used) + ' from ' + d.last_address + '. Trusted until ' + when(d.expires) + '.'),
        h('button', {
          type: 'button',
          class: 'secondary small',
          'aria-label': 'Remove ' + d.name,
          onclick: () => {
            showError('');
            api('DELETE', '/me/devices/' + encodeURIComponent(d.id))
              .then(() => {
                showNotice('Removed: ' + d.name + '. It needs a code at the next sign-in.');
                return loadDevices();
              })
              .catch(handle);
          },
        }, 'Remove'),
      ),
    ),
  );
  $('devices-none').hidden = devices.length > 0;
  $('devices-remove-all-box').hidden = devices.length === 0;
}

click('devices-remove-all', () =>
  confirmInBox('devices-remove-all-box', 'Every trusted browser, this one too, will need a code at the next sign-in.', 'Remove all', async () => {
    const res = await api('DELETE', '/me/devices');
    showNotice('Trusted browsers removed: ' + res.revoked + '.');
    await loadDevices();
  }),
);
click('acct-setup', () => {
  $('setup-pass').value = '';
  show('setup');
});
onSubmit(
  'form-setup',
  async () => {
    const pass = $('setup-pass');
    await openWizard(false, pass.value).catch(clearUnlessStepUp(pass));
    pass.value = '';
  },
  { fields: { invalid_credentials: 'password', locked: 'password' } },
);
click('acct-password', () => openPassword(false));
click('nav-signout', () => signOut());
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

onSubmit(
  'form-regen',
  async () => {
    const pass = $('regen-pass');
    const res = await api('POST', '/me/2fa/recovery-codes', { password: pass.value }).catch(clearUnlessStepUp(pass));
    pass.value = '';
    fillCodes('regen-list', res.recovery_codes);
    show('codes');
  },
  { fields: { invalid_credentials: 'password', locked: 'password' } },
);
click('regen-done', () => openAccount());

onSubmit(
  'form-disable',
  async () => {
    const pass = $('disable-pass');
    const code = $('disable-code').value.trim();
    await api('DELETE', '/me/2fa', { password: pass.value, code: /^[0-9 ]+$/.test(code) ? code.replace(/ /g, '') : code }).finally(() => {
      pass.value = '';
    });
    showNotice('Two-factor authentication is off.');
    await openAccount();
  },
  { fields: { invalid_credentials: 'password', invalid_code: 'code', code_reused: 'code', clock_not_synchronized: 'code', locked: 'password' } },
);

onSubmit(
  'form-email',
  async () => {
    const res = await api('PUT', '/me/security-email', { email: $('email-address').value.trim(), password: $('email-pass').value });
    $('email-pass').value = '';
    showNotice('A code was sent to ' + res.sent_to + '. Type it below to confirm the address.');
    $('form-email-code').hidden = false;
    $('email-code').value = '';
    $('email-code').focus();
  },
  { fields: { invalid_credentials: 'password', mail_failed: 'email', locked: 'password' } },
);
onSubmit(
  'form-email-code',
  async () => {
    await api('POST', '/me/security-email/verify', { code: $('email-code').value.trim() });
    await openAccount();
    showNotice('The security email is confirmed.');
  },
  { fields: { invalid_code: 'code', challenge_expired: 'code' }, sentences: { invalid_code: 'That code is not right. Type the code from the newest email.' } },
);

async function signOut() {
  await api('POST', '/logout');
  state.challenge = '';
  state.me = null;
  history.replaceState(null, '', location.pathname);
  showNotice('You are signed out.');
  show('login');
}

// ---- users -------------------------------------------------------------------

let groupNames = [];

function groupBoxes(fieldsetId, chosen, prefix) {
  const fs = $(fieldsetId);
  const legend = fs.querySelector('legend');
  const boxes = groupNames.map((g) =>
    h('p', { class: 'row' }, h('input', { type: 'checkbox', id: prefix + g, value: g, checked: chosen.includes(g) }), h('label', { for: prefix + g }, g)),
  );
  fs.replaceChildren(legend, ...(boxes.length ? boxes : [h('p', { class: 'hint' }, 'No groups yet.')]));
}

function checked(fieldsetId) {
  return [...$(fieldsetId).querySelectorAll('input:checked')].map((i) => i.value);
}

function twofaText(u) {
  if (u.two_factor) {
    const ways = [];
    if (u.authenticator) ways.push('app');
    if (u.passkeys) ways.push(u.passkeys === 1 ? '1 passkey' : u.passkeys + ' passkeys');
    return 'On (' + ways.join(', ') + ')';
  }
  return u.two_factor_required ? 'Off: required, not set up yet' : 'Off';
}

async function openUsers() {
  const [users, groups] = await Promise.all([api('GET', '/users'), api('GET', '/groups')]);
  groupNames = (groups.groups || []).map((g) => g.name);
  $('users-table').tBodies[0].replaceChildren(
    ...(users.users || []).map((u) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, u.name),
        h('td', {}, u.role === 'admin' ? 'Administrator' : 'User'),
        h('td', {}, (u.groups || []).join(', ')),
        h('td', {}, twofaText(u)),
        h('td', {}, u.two_factor ? String(u.recovery_codes_left) : ''),
        h('td', {}, u.disabled ? 'Disabled' : u.must_change_password ? 'Must change password' : 'Active'),
        h('td', {}, h('a', { href: '#user/' + encodeURIComponent(u.name), 'aria-label': 'Manage ' + u.name }, 'Manage')),
      ),
    ),
  );
  groupBoxes('user-new-groups', [], 'user-new-group-');
  show('users');
}

onSubmit(
  'form-user-new',
  async () => {
    const name = $('user-new-name').value.trim();
    if (!name) throw new FieldProblem('name', 'Type a username.');
    if ([...$('user-new-pass').value].length < 8) throw new FieldProblem('password', 'The password needs at least 8 characters.');
    await api('POST', '/users', {
      name: name,
      password: $('user-new-pass').value,
      role: $('user-new-role').value,
      groups: checked('user-new-groups'),
      must_change_password: $('user-new-change').checked,
    });
    $('user-new-name').value = '';
    $('user-new-pass').value = '';
    await openUsers();
    showNotice('User ' + name + ' added.');
  },
  { fields: { conflict: 'name' }, sentences: { conflict: 'There is a user with this name already.' } },
);

let currentUser = '';
async function openUser(name) {
  const [u, groups] = await Promise.all([api('GET', '/users/' + encodeURIComponent(name)), api('GET', '/groups')]);
  groupNames = (groups.groups || []).map((g) => g.name);
  currentUser = u.name;
  $('user-title').textContent = 'User ' + u.name;
  $('user-2fa').textContent = twofaText(u);
  $('user-left').textContent = u.two_factor ? String(u.recovery_codes_left) : '';
  $('user-email').textContent = u.security_email || 'None';
  const path = '/users/' + encodeURIComponent(u.name) + '/sessions';
  await loadSessions('user-sessions', path, () => loadSessions('user-sessions', path));
  $('user-created').textContent = when(u.created);
  $('user-changed').textContent = when(u.password_changed);
  $('user-role').value = u.role;
  $('user-disabled').checked = u.disabled;
  groupBoxes('user-groups', u.groups || [], 'user-group-');
  $('user-pass').value = '';
  $('user-2fa-box').hidden = !u.two_factor;
  $('user-delete-box').hidden = u.name === 'admin' || (state.me && state.me.name === u.name);
  show('user');
}

onSubmit('form-user-edit', async () => {
  await api('PATCH', '/users/' + encodeURIComponent(currentUser), {
    role: $('user-role').value,
    groups: checked('user-groups'),
    disabled: $('user-disabled').checked,
  });
  await openUser(currentUser);
  showNotice('Saved.');
});
onSubmit('form-user-password', async () => {
  if ([...$('user-pass').value].length < 8) throw new FieldProblem('password', 'The password needs at least 8 characters.');
  await api('PATCH', '/users/' + encodeURIComponent(currentUser), { password: $('user-pass').value, must_change_password: $('user-pass-change').checked });
  $('user-pass').value = '';
  await openUser(currentUser);
  showNotice('The password of ' + currentUser + ' was set. Their other sign-ins ended.');
});
click('user-2fa-off', () =>
  confirmInBox('user-2fa-box', currentUser + ' will sign in with the password alone; their trusted browsers and security email are forgotten.', 'Turn it off', async () => {
    await api('DELETE', '/users/' + encodeURIComponent(currentUser) + '/2fa');
    await openUser(currentUser);
    showNotice('Two-factor authentication of ' + currentUser + ' is off.');
  }),
);
click('user-delete', () =>
  confirmInBox('user-delete-box', 'The account ' + currentUser + ' is deleted for good.', 'Delete', async () => {
    const name = currentUser;
    await api('DELETE', '/users/' + encodeURIComponent(name));
    location.hash = '#users';
    showNotice('User ' + name + ' deleted.');
  }),
);

// ---- groups ------------------------------------------------------------------

async function openGroups() {
  const res = await api('GET', '/groups');
  const groups = res.groups || [];
  $('groups-table').tBodies[0].replaceChildren(
    ...groups.map((g) => {
      const cell = h('td', {});
      const box = h('div', { class: 'confirm', id: 'group-del-' + g.name });
      box.append(
        h('button', {
          type: 'button',
          class: 'danger small',
          'aria-label': 'Delete group ' + g.name,
          onclick: () =>
            confirmInBox(box.id, 'Delete the group ' + g.name + '? Its members stay.', 'Delete', async () => {
              await api('DELETE', '/groups/' + encodeURIComponent(g.name));
              await openGroups();
              showNotice('Group ' + g.name + ' deleted.');
            }),
        }, 'Delete…'),
      );
      cell.append(box);
      return h('tr', {}, h('th', { scope: 'row' }, g.name), h('td', {}, (g.members || []).join(', ') || 'Nobody'), cell);
    }),
  );
  $('groups-none').hidden = groups.length > 0;
  $('groups-table').hidden = groups.length === 0;
  show('groups');
}
onSubmit(
  'form-group-new',
  async () => {
    const name = $('group-new-name').value.trim();
    if (!name) throw new FieldProblem('name', 'Type a name for the group.');
    await api('POST', '/groups', { name: name });
    $('group-new-name').value = '';
    await openGroups();
    showNotice('Group ' + name + ' added.');
  },
  { fields: { conflict: 'name' }, sentences: { conflict: 'There is a group with this name already.' } },
);

// ---- policy ------------------------------------------------------------------

async function openPolicy() {
  const [p, users, groups] = await Promise.all([api('GET', '/policy/2fa'), api('GET', '/users'), api('GET', '/groups')]);
  const scope = p.scope || 'none';
  for (const r of document.querySelectorAll('#form-policy input[name=scope]')) r.checked = r.value === scope;
  const userBoxes = (users.users || []).map((u) =>
    h('p', { class: 'row' }, h('input', { type: 'checkbox', id: 'policy-user-' + u.name, value: u.name, checked: (p.users || []).includes(u.name) }),
      h('label', { for: 'policy-user-' + u.name }, u.name)),
  );
  $('policy-users').replaceChildren($('policy-users').querySelector('legend'), ...userBoxes);
  groupNames = (groups.groups || []).map((g) => g.name);
  groupBoxes('policy-groups', p.groups || [], 'policy-group-');
  policyChosen();
  $('policy-passkey').checked = !!p.passkey_sign_in;
  const pending = (users.users || []).filter((u) => u.two_factor_required && !u.two_factor && !u.disabled);
  $('policy-pending').replaceChildren(...pending.map((u) => h('li', {}, u.name)));
  $('policy-pending-none').hidden = pending.length > 0;
  show('policy');
}
function policyChosen() {
  $('policy-chosen').hidden = !$('policy-selected').checked;
}
for (const r of document.querySelectorAll('#form-policy input[name=scope]')) r.addEventListener('change', policyChosen);
onSubmit('form-policy', async () => {
  const scope = (document.querySelector('#form-policy input[name=scope]:checked') || {}).value || 'none';
  const body = { scope: scope, passkey_sign_in: $('policy-passkey').checked };
  if (scope === 'selected') {
    body.users = checked('policy-users');
    body.groups = checked('policy-groups');
  }
  await api('PUT', '/policy/2fa', body);
  await openPolicy();
  showNotice('The policy is saved.');
});

// ---- blocked addresses and the allow-list ---------------------------------------

async function openSecurity() {
  const [b, s] = await Promise.all([api('GET', '/security/blocks'), api('GET', '/settings/security')]);
  $('security-you').textContent = b.your_address;
  const blocks = b.blocks || [];
  $('blocks-table').tBodies[0].replaceChildren(
    ...blocks.map((x) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, (x.kind === 'client' ? 'Address ' : 'Account ') + x.key),
        h('td', {}, when(x.until)),
        h('td', {}, String(x.offences)),
        h('td', {}, h('button', {
          type: 'button',
          class: 'secondary small',
          'aria-label': 'Unblock ' + x.key,
          onclick: () =>
            api('DELETE', '/security/blocks?kind=' + encodeURIComponent(x.kind) + '&key=' + encodeURIComponent(x.key))
              .then(() => openSecurity())
              .then(() => showNotice('Unblocked: ' + x.key + '.'))
              .catch(handle),
        }, 'Unblock')),
      ),
    ),
  );
  $('blocks-none').hidden = blocks.length > 0;
  $('blocks-table').hidden = blocks.length === 0;
  $('allow-list').value = (s.allow_list || []).join('\n');
  show('security');
}
onSubmit('form-allow', async () => {
  const list = $('allow-list').value.split(/[\s,]+/).filter(Boolean);
  await api('PUT', '/settings/security', { allow_list: list });
  await openSecurity();
  showNotice('Saved.');
});

// ---- mail ----------------------------------------------------------------------

const PRESET_HINTS = {
  gmail: 'Gmail needs an app password (Google account, Security, 2-Step Verification, App passwords), not the account\'s own password. The username is the Gmail address.',
  outlook: 'Outlook.com needs an app password when the account has two-factor authentication (Microsoft calls it two-step verification). The username is the Outlook address.',
  custom: 'Your mail provider\'s SMTP server. The certificate is always checked.',
};
function presetChanged() {
  const p = $('smtp-preset').value;
  $('smtp-custom').hidden = p !== 'custom';
  $('smtp-preset-hint').textContent = PRESET_HINTS[p] || '';
}
$('smtp-preset').addEventListener('change', presetChanged);

async function openMail() {
  const [m, outbox] = await Promise.all([api('GET', '/settings/smtp'), api('GET', '/settings/smtp/outbox')]);
  const s = m.settings || {};
  $('mail-state').textContent = m.configured
    ? 'A mail server is set up: security notices and emergency codes are sent.'
    : 'No mail server yet: nothing can be mailed, not even emergency codes.';
  $('smtp-preset').value = s.preset || 'gmail';
  $('smtp-host').value = s.host || '';
  $('smtp-port').value = s.port ? String(s.port) : '';
  $('smtp-security').value = s.security || 'starttls';
  $('smtp-ca').value = s.ca_pem || '';
  $('smtp-user').value = s.username || '';
  $('smtp-pass').value = '';
  $('smtp-pass').placeholder = s.password_set ? 'unchanged' : '';
  $('smtp-from').value = s.from || '';
  presetChanged();
  const entries = outbox.entries || [];
  const states = { pending: 'Waiting', delivered: 'Sent', failed: 'Given up' };
  $('outbox-table').tBodies[0].replaceChildren(
    ...entries.map((x) =>
      h('tr', {}, h('td', {}, x.to), h('td', {}, String(x.kind || '').replace(/_/g, ' ')), h('td', {}, states[x.state] || x.state),
        h('td', {}, String(x.attempts)), h('td', {}, x.state === 'pending' ? when(x.next_try) : ''),
        h('td', {}, x.last_error_code ? MAIL_REASONS[x.last_error_code] || x.last_error_code : '')),
    ),
  );
  $('outbox-none').hidden = entries.length > 0;
  $('outbox-table').hidden = entries.length === 0;
  show('mail');
}
onSubmit('form-smtp', async () => {
  const preset = $('smtp-preset').value;
  const body = { preset: preset, username: $('smtp-user').value.trim(), password: $('smtp-pass').value, from: $('smtp-from').value.trim() };
  if (preset === 'custom') {
    const port = $('smtp-port').value.trim();
    if (port && !/^[0-9]+$/.test(port)) throw new FieldProblem('port', 'The port is a number, usually 587 or 465.');
    body.host = $('smtp-host').value.trim();
    body.port = port ? Number(port) : 0;
    body.security = $('smtp-security').value;
    body.ca_pem = $('smtp-ca').value;
  }
  await api('PUT', '/settings/smtp', body);
  await openMail();
  showNotice('Saved. Send a test mail to check it.');
});
onSubmit(
  'form-smtp-test',
  async () => {
    const res = await api('POST', '/settings/smtp/test', { to: $('smtp-test-to').value.trim() });
    showNotice('The test mail was sent. The server answered: ' + (res.server_reply || 'OK') + '.');
  },
  { fields: { mail_failed: 'to' } },
);

// ---- time ----------------------------------------------------------------------

const TIME_STATES = {
  synchronized: 'Synchronized: a time server confirmed the clock.',
  estimated: 'Estimated: the clock is probably close, but no time server has confirmed it. Codes may fail if it is off.',
  untrusted: 'Not set: the device does not know the time. Codes from authenticator apps will fail until it is set.',
};
const TIME_SOURCES = { ntp: 'a time server (NTP)', rtc: 'the hardware clock', saved: 'the time saved at the last shutdown', manual: 'set by hand', system: 'the system clock', build: 'the firmware\'s build date' };

async function openTime() {
  const [st, set] = await Promise.all([api('GET', '/time/status'), api('GET', '/settings/time')]);
  await loadDevice();
  const t = $('time-state');
  t.textContent = TIME_STATES[st.state] || st.state;
  t.className = st.state === 'synchronized' ? 'notice' : 'warning';
  const dev = deviceNow();
  $('time-now').textContent = dev ? utc(dev) + ' (' + dev.toLocaleString() + ' here)' : '';
  $('time-source').textContent = TIME_SOURCES[st.source] || st.source;
  $('time-last').textContent = when(st.last_sync) || 'Never';
  $('time-next').textContent = when(st.next_sync) || 'Not planned';
  $('time-offset').textContent = st.last_sync ? Math.round(st.offset_ms) + ' ms' : '';
  $('time-server').textContent = st.server || '';
  $('time-error').textContent = st.error || '';
  $('time-error').hidden = $('time-error-label').hidden = !st.error;
  $('ntp-enabled').checked = !!set.ntp_enabled;
  $('ntp-servers').value = (set.ntp_servers || []).join('\n');
  $('settime-hint').textContent =
    set.ntp_enabled && st.state === 'synchronized'
      ? 'A time server keeps the time now: turn NTP off above to set it by hand.'
      : set.ntp_enabled
        ? 'Kept until a time server answers and corrects it.'
        : 'NTP is off: the time you set here is kept.';
  show('time');
}
click('time-sync', async () => {
  $('time-sync').disabled = true;
  try {
    const res = await api('POST', '/time/sync');
    await openTime();
    if (res.ok) showNotice('The clock is synchronized.');
    else showError('No time server answered. Check the servers below and the network.');
  } finally {
    $('time-sync').disabled = false;
  }
});
onSubmit('form-ntp', async () => {
  const servers = $('ntp-servers').value.split(/[\s,]+/).filter(Boolean);
  if ($('ntp-enabled').checked && servers.length === 0) throw new FieldProblem('ntp_servers', 'Name at least one time server, for example pool.ntp.org.');
  await api('PUT', '/settings/time', { ntp_enabled: $('ntp-enabled').checked, ntp_servers: servers });
  await openTime();
  showNotice('Saved.');
});
function localInputValue(d) {
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
}
click('settime-now', () => {
  $('settime-value').value = localInputValue(new Date());
});
onSubmit(
  'form-settime',
  async () => {
    const d = new Date($('settime-value').value);
    if (isNaN(d)) throw new FieldProblem('time', 'Choose a date and a time.');
    await api('PUT', '/time', { time: d.toISOString() });
    await openTime();
    showNotice('The time is set.');
  },
  { fields: { conflict: 'time' }, sentences: { conflict: 'NTP keeps the time: turn NTP off first to set it by hand.' } },
);

// ---- network -------------------------------------------------------------------

let netConfig = null;
async function openNetwork() {
  const res = await api('GET', '/settings/network');
  netConfig = res.config || {};
  const st = res.status || {};
  $('net-status').replaceChildren(
    ...(st.interfaces || []).map((i) =>
      h('li', {}, h('strong', {}, i.name + (i.up ? ' (connected)' : i.present ? ' (no link)' : ' (missing)')),
        h('span', {}, (i.mode === 'dhcp' ? 'DHCP' : 'Static') + (i.mac ? ', ' + i.mac : '') + ': ' + ((i.addresses || []).join(', ') || 'no address yet'))),
    ),
  );
  $('net-hostname').value = netConfig.hostname || '';
  $('net-dns').value = (netConfig.dns || []).join('\n');
  $('net-interfaces').replaceChildren(...(netConfig.interfaces || []).map(interfaceFields));
  showPending(st.pending);
  show('network');
}

function interfaceFields(i, n) {
  const id = 'net-if' + n;
  const fs = h('fieldset', { class: 'interface', 'data-name': i.name, 'data-list': 'interfaces' }, h('legend', {}, 'Port ' + i.name));
  const radio = (mode, label) =>
    h('p', { class: 'row' }, h('input', { type: 'radio', name: id + '-mode', id: id + '-' + mode, value: mode, checked: i.mode === mode }), h('label', { for: id + '-' + mode }, label));
  const staticBox = h('div', { class: 'static' },
    h('label', { for: id + '-addr' }, 'Addresses with prefix, one per line (e.g. 192.168.1.10/24)'),
    h('textarea', { id: id + '-addr', name: 'addresses', rows: 2, spellcheck: 'false' }),
    h('label', { for: id + '-gw4' }, 'Gateway (IPv4)'),
    h('input', { id: id + '-gw4', name: 'gateway4', autocomplete: 'off', spellcheck: 'false' }),
    h('label', { for: id + '-gw6' }, 'Gateway (IPv6, optional)'),
    h('input', { id: id + '-gw6', name: 'gateway6', autocomplete: 'off', spellcheck: 'false' }),
  );
  fs.append(radio('dhcp', 'Automatic (DHCP)'), radio('static', 'Static address'), staticBox);
  staticBox.querySelector('textarea').value = (i.addresses || []).join('\n');
  staticBox.querySelector('[name=gateway4]').value = i.gateway4 || '';
  staticBox.querySelector('[name=gateway6]').value = i.gateway6 || '';
  const sync = () => {
    staticBox.hidden = !fs.querySelector('input[value=static]').checked;
  };
  for (const r of fs.querySelectorAll('input[type=radio]')) r.addEventListener('change', sync);
  sync();
  return fs;
}

function showPending(p) {
  clearTimeout(state.netTimer);
  const box = $('net-pending');
  if (!p || !p.deadline) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.id = p.id;
  const end = new Date(p.deadline).getTime();
  const tick = () => {
    if ($('view-network').hidden) return;
    const left = Math.ceil((end - Date.now()) / 1000);
    if (left <= 0) {
      $('net-countdown').textContent = 'Not confirmed in time: the device is going back to the settings before.';
      $('net-confirm').hidden = true;
      state.netTimer = setTimeout(() => openNetwork().then(() => showNotice('The change was not confirmed, so the settings before are back.')).catch(handle), 2500);
      return;
    }
    $('net-countdown').textContent = 'The new settings are on trial. Keep them within ' + duration(left) + ', or the device goes back to the settings before.';
    $('net-confirm').hidden = false;
    state.netTimer = setTimeout(tick, 1000);
  };
  tick();
}

onSubmit('form-network', async () => {
  const cfg = { hostname: $('net-hostname').value.trim(), interfaces: [], dns: $('net-dns').value.split(/[\s,]+/).filter(Boolean) };
  for (const fs of document.querySelectorAll('#net-interfaces fieldset')) {
    const mode = fs.querySelector('input[type=radio]:checked').value;
    const i = { name: fs.dataset.name, mode: mode };
    if (mode === 'static') {
      i.addresses = fs.querySelector('[name=addresses]').value.split(/[\s,]+/).filter(Boolean);
      if (i.addresses.length === 0) throw new FieldProblem('addresses', 'A static port needs at least one address, like 192.168.1.10/24.');
      const gw4 = fs.querySelector('[name=gateway4]').value.trim();
      const gw6 = fs.querySelector('[name=gateway6]').value.trim();
      if (gw4) i.gateway4 = gw4;
      if (gw6) i.gateway6 = gw6;
    }
    cfg.interfaces.push(i);
  }
  const res = await api('PUT', '/settings/network', cfg);
  await openNetwork();
  showPending({ id: res.id, deadline: res.deadline });
  $('net-confirm').focus();
});
click('net-confirm', async () => {
  await api('POST', '/settings/network/confirm', { id: $('net-pending').dataset.id });
  clearTimeout(state.netTimer);
  await openNetwork();
  showNotice('The new network settings are kept.');
});

// ---- audit ---------------------------------------------------------------------

function auditQuery(extra) {
  const q = new URLSearchParams();
  const user = $('audit-user').value.trim();
  const event = $('audit-event').value.trim();
  if (user) q.set('user', user);
  if (event) q.set('event', event);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

async function openAudit() {
  const res = await api('GET', '/audit?' + auditQuery({ limit: 50, before: state.auditBefore }));
  const entries = res.entries || [];
  $('audit-table').tBodies[0].replaceChildren(
    ...entries.map((e) =>
      h('tr', {}, h('td', { class: 'nowrap' }, when(e.time)), h('td', {}, e.event), h('td', {}, e.user || ''), h('td', {}, e.actor || ''), h('td', {}, e.client || ''),
        h('td', { class: 'wrap' }, e.detail || '')),
    ),
  );
  $('audit-none').hidden = entries.length > 0;
  $('audit-table').hidden = entries.length === 0;
  $('audit-newer').hidden = state.auditPages.length === 0;
  $('audit-older').hidden = entries.length < 50;
  $('audit-older').dataset.before = entries.length ? String(entries[entries.length - 1].id) : '0';
  $('audit-caption').textContent = 'Newest first' + (state.auditPages.length ? ', page ' + (state.auditPages.length + 1) : '');
  $('audit-csv').href = '/api/v1/audit?' + auditQuery({ format: 'csv' });
  show('audit');
}
onSubmit('form-audit', async () => {
  state.auditPages = [];
  state.auditBefore = 0;
  await openAudit();
});
click('audit-older', async () => {
  state.auditPages.push(state.auditBefore);
  state.auditBefore = Number($('audit-older').dataset.before);
  await openAudit();
});
click('audit-newer', async () => {
  state.auditBefore = state.auditPages.pop() || 0;
  await openAudit();
});

// ---- system --------------------------------------------------------------------

async function openSystem() {
  const st = await api('GET', '/system/status');
  await loadDevice();
  $('sys-name').textContent = deviceName();
  $('sys-board').textContent = st.board_model + ' (' + st.board + ')';
  $('sys-version').textContent = st.version || 'unknown';
  $('sys-started').textContent = when(st.started) + ' (' + duration(st.uptime_seconds) + ')';
  const b = st.button || {};
  $('sys-button').textContent = b.available
    ? 'Watched (' + b.source + (b.device ? ', ' + b.device : '') + ')' + (b.last_press ? '. Last pressed ' + when(b.last_press) + ' for ' + b.last_press_duration + '.' : '.')
    : 'Not watched' + (b.error ? ': ' + b.error : '.');
  const r = (state.device && state.device.reset_button) || {};
  $('sys-button-does').textContent = r.present
    ? 'Held ' + r.hold_seconds + ' to ' + r.cancel_seconds + ' seconds (the LED blinks fast: let go): the admin account gets the default password back, without two-factor authentication or security email, and the network goes back to DHCP. Other accounts and data stay.'
    : 'Nothing: no button is watched.';
  const lr = st.last_reset;
  $('sys-reset').textContent = lr && lr.started ? when(lr.started) + ' (' + (lr.source || 'button') + (lr.finished ? ', finished' : ', not finished') + ')' : 'Never';
  $('sys-leds').textContent = (st.leds || []).join(', ') || 'None';
  $('sys-clock').textContent = st.clock ? TIME_STATES[st.clock.state] || st.clock.state : 'Not kept by this service.';
  const c = st.certificate;
  $('sys-cert').hidden = !c;
  if (c) {
    $('cert-fp').textContent = c.fingerprint_sha256;
    $('cert-names').textContent = (c.names || []).join(', ');
    $('cert-source').textContent = c.source === 'owner' ? 'You (imported)' : 'This device';
    $('cert-until').textContent = new Date(c.not_after).getUTCFullYear() >= 9999 ? 'No end date' : when(c.not_after);
  }
  $('cert-device-box').hidden = !c || c.source !== 'owner';
  $('cert-chain').value = '';
  $('cert-key').value = '';
  await loadPorts();
  show('system');
}

// ---- ports ---------------------------------------------------------------------

function pagePort() {
  return Number(location.port || (location.protocol === 'https:' ? 443 : 80));
}

async function loadPorts() {
  let p;
  try {
    p = await api('GET', '/settings/ports');
  } catch (e) {
    // Plain HTTP (development): authd does not manage ports.
    if (e instanceof ApiError && e.code === 'conflict') {
      $('sys-ports').hidden = true;
      return;
    }
    throw e;
  }
  $('sys-ports').hidden = false;
  $('ports-https').value = String(p.https_port);
  $('ports-http').value = String(p.http_port);
  showPortsPending(p.pending);
}

function showPortsPending(p) {
  clearTimeout(state.portsTimer);
  const box = $('ports-pending');
  if (!p || !p.deadline) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.id = p.id;
  const here = pagePort() === p.ports.https_port;
  $('ports-confirm').hidden = !here;
  $('ports-go').hidden = here;
  if (!here) {
    // The same name on the new port: the session cookie goes with it.
    const u = new URL(location.href);
    u.protocol = 'https:';
    u.port = String(p.ports.https_port);
    u.pathname = '/';
    u.search = '';
    u.hash = '#system';
    $('ports-link').href = u.href;
  }
  const end = new Date(p.deadline).getTime();
  const tick = () => {
    if ($('view-system').hidden) return;
    const left = Math.ceil((end - Date.now()) / 1000);
    if (left <= 0) {
      $('ports-countdown').textContent = 'Not kept in time: the new ports are closed again.';
      $('ports-confirm').hidden = $('ports-go').hidden = true;
      return;
    }
    $('ports-countdown').textContent = 'HTTPS port ' + p.ports.https_port + (p.ports.http_port ? ' and HTTP port ' + p.ports.http_port : '') + ' are open on trial for ' + duration(left) + '.';
    state.portsTimer = setTimeout(tick, 1000);
  };
  tick();
}

onSubmit('form-ports', async () => {
  const https = $('ports-https').value.trim();
  const http = $('ports-http').value.trim();
  if (!/^[0-9]+$/.test(https)) throw new FieldProblem('https_port', 'The HTTPS port is a number from 1 to 65535.');
  if (!/^[0-9]+$/.test(http)) throw new FieldProblem('http_port', 'The HTTP port is a number from 0 to 65535.');
  const res = await api('PUT', '/settings/ports', { https_port: Number(https), http_port: Number(http) });
  showPortsPending({ id: res.id, deadline: res.deadline, ports: { https_port: Number(https), http_port: Number(http) } });
  $('ports-link').focus();
}, { fields: { conflict: 'https_port' }, sentences: { conflict: 'Another program uses this port already.' } });

click('ports-confirm', async () => {
  await api('POST', '/settings/ports/confirm', { id: $('ports-pending').dataset.id });
  await loadPorts();
  showNotice('The new ports are kept.');
});

onSubmit('form-cert', async () => {
  if (!$('cert-chain').value.includes('BEGIN CERTIFICATE')) throw new FieldProblem('chain_pem', 'Paste the certificate in PEM form, starting with -----BEGIN CERTIFICATE-----.');
  if (!$('cert-key').value.includes('PRIVATE KEY')) throw new FieldProblem('key_pem', 'Paste the private key in PEM form, starting with -----BEGIN ... PRIVATE KEY-----.');
  const info = await api('PUT', '/system/certificate', { chain_pem: $('cert-chain').value, key_pem: $('cert-key').value });
  await openSystem();
  showNotice('Your certificate is in use. Its fingerprint: ' + info.served.fingerprint_sha256);
}, { fields: { bad_request: 'chain_pem' } });

click('cert-device', () =>
  confirmInBox('cert-device-box', 'Browsers will see the device\'s own certificate again.', 'Go back', async () => {
    const info = await api('DELETE', '/system/certificate');
    await openSystem();
    showNotice('The device certificate is in use again. Its fingerprint: ' + info.served.fingerprint_sha256);
  }),
);
click('cert-regen', () =>
  confirmInBox('cert-regen-box', 'Browsers that accepted the old certificate will warn again, and show the new fingerprint.', 'Make a new one', async () => {
    const info = await api('POST', '/system/certificate/regenerate');
    await openSystem();
    showNotice('A new certificate is in use. Its fingerprint: ' + info.served.fingerprint_sha256);
  }),
);

const OPENERS = {
  account: () => openAccount(),
  users: openUsers,
  user: openUser,
  groups: openGroups,
  policy: openPolicy,
  security: openSecurity,
  mail: openMail,
  time: openTime,
  network: () => {
    clearTimeout(state.netTimer);
    return openNetwork();
  },
  audit: () => {
    state.auditPages = [];
    state.auditBefore = 0;
    return openAudit();
  },
  system: openSystem,
};

start();
