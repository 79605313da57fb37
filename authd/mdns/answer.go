package mdns

import (
	"errors"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// What the responder answers, and how little: a query is answered with one
// message holding the device's own records alone (under 1 KiB whatever was
// asked), only when it comes from the link itself, and its first
// maxQuestions questions only. Anyone on the LAN can send queries with a
// forged source, so a query must never draw more than it is worth.
const (
	// maxQuestions bounds the questions read from one query.
	maxQuestions = 16
	// hostTTL is the time to live of the records naming the host (A, AAAA,
	// SRV), otherTTL that of the others (PTR, TXT), as RFC 6762 §10 says.
	hostTTL  = 120
	otherTTL = 4500
	// legacyTTL caps the TTL of answers to one-shot (legacy) queries, RFC
	// 6762 §6.7.
	legacyTTL = 10
	// cacheFlush is the top bit of a unique record's class (RFC 6762 §10.2),
	// unicastResponse the top bit of a question's class (§5.4).
	cacheFlush      = 1 << 15
	unicastResponse = 1 << 15
)

var servicesName = dnsmessage.MustNewName("_services._dns-sd._udp.local.")

// records are the names the device answers for.
type records struct {
	host     dnsmessage.Name // <hostname>.local.
	service  dnsmessage.Name // _https._tcp.local.
	instance dnsmessage.Name // <instance>._https._tcp.local.
	port     uint16
	text     []string // TXT strings, key=value, sorted
}

func newRecords(cfg Config) (records, error) {
	host, err := dnsmessage.NewName(cfg.Hostname + ".local.")
	if err != nil {
		return records{}, err
	}
	service, err := dnsmessage.NewName(ServiceType + ".local.")
	if err != nil {
		return records{}, err
	}
	instance, err := dnsmessage.NewName(cfg.Instance + "." + ServiceType + ".local.")
	if err != nil {
		return records{}, err
	}
	r := records{host: host, service: service, instance: instance, port: uint16(cfg.Port)}
	for k, v := range cfg.Text {
		r.text = append(r.text, k+"="+v)
	}
	sort.Strings(r.text)
	if len(r.text) == 0 {
		r.text = []string{""} // a TXT record holds at least one string
	}
	return r, nil
}

// link is what the responder knows of the interface a packet came in on:
// its addresses with their prefixes.
type link struct {
	index    int
	prefixes []netip.Prefix
}

// onLink reports whether src is a neighbour on l: a link-local IPv6
// address, or one within one of l's prefixes. RFC 6762 §11: a query from
// elsewhere is not from the link, and may carry a forged source to turn
// the answer on a victim.
func (l link) onLink(src netip.Addr) bool {
	src = src.Unmap()
	if src.Is6() && src.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range l.prefixes {
		if p.Contains(src.WithZone("")) {
			return true
		}
	}
	return false
}

// addrs returns l's addresses of one family.
func (l link) addrs(v4 bool) []netip.Addr {
	var out []netip.Addr
	for _, p := range l.prefixes {
		if p.Addr().Is4() == v4 {
			out = append(out, p.Addr())
		}
	}
	return out
}

// reply is what to send back for a query: msg to the querier (unicast) or
// to the group (multicast), or nothing.
type reply struct {
	msg     []byte
	unicast bool
	// names are the records multicast, for the once-a-second rule.
	names []string
}

// errNotForUs marks a packet that draws no answer: not a query, not from
// the link, or asking for nothing the device holds.
var errNotForUs = errors.New("mdns: nothing to answer")

// answer builds the reply to one packet from src on l. recent tells
// whether a record (by key) was multicast on l within the last second: it
// is then not multicast again (RFC 6762 §6). A response from another
// responder is read for a name it also claims, returned as conflict.
func (r records) answer(packet []byte, src netip.AddrPort, l link, recent func(key string) bool) (rep reply, conflict netip.Addr, err error) {
	if !l.onLink(src.Addr()) {
		return reply{}, netip.Addr{}, errNotForUs
	}
	var p dnsmessage.Parser
	h, err := p.Start(packet)
	if err != nil {
		return reply{}, netip.Addr{}, err
	}
	if h.Response {
		return reply{}, r.conflictIn(&p, l), errNotForUs
	}
	if h.OpCode != 0 {
		return reply{}, netip.Addr{}, errNotForUs
	}
	legacy := src.Port() != Port
	var questions []dnsmessage.Question
	unicast := legacy
	for range maxQuestions {
		q, err := p.Question()
		if errors.Is(err, dnsmessage.ErrSectionDone) {
			break
		}
		if err != nil {
			return reply{}, netip.Addr{}, err
		}
		if q.Class&unicastResponse != 0 {
			unicast = true
		}
		q.Class &^= unicastResponse
		if q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY {
			continue
		}
		questions = append(questions, q)
	}
	var answers, extra []dnsmessage.Resource
	seen := map[string]bool{}
	add := func(to *[]dnsmessage.Resource, rs ...dnsmessage.Resource) {
		for _, rr := range rs {
			key := rrKey(rr)
			if seen[key] {
				continue
			}
			if to == &answers && !unicast && recent(key) {
				continue
			}
			seen[key] = true
			*to = append(*to, rr)
		}
	}
	var asked []dnsmessage.Question
	for _, q := range questions {
		before := len(answers)
		switch {
		case nameIs(q.Name, r.host):
			if wants(q.Type, dnsmessage.TypeA) {
				add(&answers, r.address(l, true)...)
			}
			if wants(q.Type, dnsmessage.TypeAAAA) {
				add(&answers, r.address(l, false)...)
			}
			// The other family's addresses go along (RFC 6762 §6.2).
			switch q.Type {
			case dnsmessage.TypeA:
				add(&extra, r.address(l, false)...)
			case dnsmessage.TypeAAAA:
				add(&extra, r.address(l, true)...)
			}
		case nameIs(q.Name, r.service) && wants(q.Type, dnsmessage.TypePTR):
			add(&answers, r.ptr())
			add(&extra, r.srv(), r.txt())
			add(&extra, r.address(l, true)...)
			add(&extra, r.address(l, false)...)
		case nameIs(q.Name, r.instance):
			if wants(q.Type, dnsmessage.TypeSRV) {
				add(&answers, r.srv())
			}
			if wants(q.Type, dnsmessage.TypeTXT) {
				add(&answers, r.txt())
			}
			add(&extra, r.address(l, true)...)
			add(&extra, r.address(l, false)...)
		case nameIs(q.Name, servicesName) && wants(q.Type, dnsmessage.TypePTR):
			add(&answers, dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: servicesName, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: otherTTL},
				Body: &dnsmessage.PTRResource{PTR: r.service}})
		}
		if len(answers) > before {
			asked = append(asked, q)
		}
	}
	if len(answers) == 0 {
		return reply{}, netip.Addr{}, errNotForUs
	}
	hdr := dnsmessage.Header{Response: true, Authoritative: true}
	if legacy {
		// A one-shot resolver matches the answer to its question by ID
		// and question, and must not be told to flush its cache.
		hdr.ID = h.ID
		for _, rs := range [][]dnsmessage.Resource{answers, extra} {
			for i := range rs {
				rs[i].Header.Class &^= cacheFlush
				rs[i].Header.TTL = min(rs[i].Header.TTL, legacyTTL)
			}
		}
	} else {
		asked = nil
	}
	msg, err := build(hdr, asked, answers, extra)
	if err != nil {
		return reply{}, netip.Addr{}, err
	}
	rep = reply{msg: msg, unicast: unicast}
	if !unicast {
		for _, rr := range answers {
			rep.names = append(rep.names, rrKey(rr))
		}
	}
	return rep, netip.Addr{}, nil
}

// announcement is the unsolicited response that tells the link the
// device's records (RFC 6762 §8.3), or with ttl0 that they are gone (§10.1).
func (r records) announcement(l link, ttl0 bool) ([]byte, error) {
	answers := []dnsmessage.Resource{r.ptr(), r.srv(), r.txt()}
	answers = append(answers, r.address(l, true)...)
	answers = append(answers, r.address(l, false)...)
	if ttl0 {
		for i := range answers {
			answers[i].Header.TTL = 0
		}
	}
	return build(dnsmessage.Header{Response: true, Authoritative: true}, nil, answers, nil)
}

// conflictIn reads another responder's answers for an address record of
// the device's host name that is not one of l's: another device claims the
// name. At most 32 records are read.
func (r records) conflictIn(p *dnsmessage.Parser, l link) netip.Addr {
	if err := p.SkipAllQuestions(); err != nil {
		return netip.Addr{}
	}
	for range 32 {
		h, err := p.AnswerHeader()
		if err != nil {
			return netip.Addr{}
		}
		if !nameIs(h.Name, r.host) {
			if err := p.SkipAnswer(); err != nil {
				return netip.Addr{}
			}
			continue
		}
		var a netip.Addr
		switch h.Type {
		case dnsmessage.TypeA:
			rr, err := p.AResource()
			if err != nil {
				return netip.Addr{}
			}
			a = netip.AddrFrom4(rr.A)
		case dnsmessage.TypeAAAA:
			rr, err := p.AAAAResource()
			if err != nil {
				return netip.Addr{}
			}
			a = netip.AddrFrom16(rr.AAAA)
		default:
			if err := p.SkipAnswer(); err != nil {
				return netip.Addr{}
			}
			continue
		}
		if !slices.Contains(l.addrs(a.Is4()), a) {
			return a
		}
	}
	return netip.Addr{}
}

func (r records) ptr() dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: r.service, Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET, TTL: otherTTL},
		Body: &dnsmessage.PTRResource{PTR: r.instance}}
}

func (r records) srv() dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: r.instance, Type: dnsmessage.TypeSRV, Class: dnsmessage.ClassINET | cacheFlush, TTL: hostTTL},
		Body: &dnsmessage.SRVResource{Port: r.port, Target: r.host}}
}

func (r records) txt() dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: r.instance, Type: dnsmessage.TypeTXT, Class: dnsmessage.ClassINET | cacheFlush, TTL: otherTTL},
		Body: &dnsmessage.TXTResource{TXT: r.text}}
}

// address returns the host's A (v4) or AAAA records on l.
func (r records) address(l link, v4 bool) []dnsmessage.Resource {
	var out []dnsmessage.Resource
	for _, a := range l.addrs(v4) {
		h := dnsmessage.ResourceHeader{Name: r.host, Class: dnsmessage.ClassINET | cacheFlush, TTL: hostTTL}
		if v4 {
			h.Type = dnsmessage.TypeA
			out = append(out, dnsmessage.Resource{Header: h, Body: &dnsmessage.AResource{A: a.As4()}})
		} else {
			h.Type = dnsmessage.TypeAAAA
			out = append(out, dnsmessage.Resource{Header: h, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return out
}

func build(h dnsmessage.Header, questions []dnsmessage.Question, answers, extra []dnsmessage.Resource) ([]byte, error) {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, q := range questions {
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	for i, section := range [][]dnsmessage.Resource{answers, extra} {
		var err error
		if i == 0 {
			err = b.StartAnswers()
		} else {
			err = b.StartAdditionals()
		}
		if err != nil {
			return nil, err
		}
		for _, rr := range section {
			if err := addResource(&b, rr); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

func addResource(b *dnsmessage.Builder, rr dnsmessage.Resource) error {
	switch body := rr.Body.(type) {
	case *dnsmessage.AResource:
		return b.AResource(rr.Header, *body)
	case *dnsmessage.AAAAResource:
		return b.AAAAResource(rr.Header, *body)
	case *dnsmessage.PTRResource:
		return b.PTRResource(rr.Header, *body)
	case *dnsmessage.SRVResource:
		return b.SRVResource(rr.Header, *body)
	case *dnsmessage.TXTResource:
		return b.TXTResource(rr.Header, *body)
	}
	return errors.New("mdns: unknown record type")
}

// rrKey names a record for de-duplication and the once-a-second rule.
func rrKey(rr dnsmessage.Resource) string {
	key := strings.ToLower(rr.Header.Name.String()) + " " + rr.Header.Type.String()
	switch body := rr.Body.(type) {
	case *dnsmessage.AResource:
		key += " " + netip.AddrFrom4(body.A).String()
	case *dnsmessage.AAAAResource:
		key += " " + netip.AddrFrom16(body.AAAA).String()
	}
	return key
}

func nameIs(a, b dnsmessage.Name) bool { return strings.EqualFold(a.String(), b.String()) }

func wants(asked, t dnsmessage.Type) bool { return asked == t || asked == dnsmessage.TypeALL }

// multicastGap is the least time between two multicasts of one record on
// one link (RFC 6762 §6).
const multicastGap = time.Second
