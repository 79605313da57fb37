package mdns

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

var testLink = link{index: 2, prefixes: []netip.Prefix{netip.MustParsePrefix("10.78.0.1/24"), netip.MustParsePrefix("fe80::1/64")}}

func testRecords(t testing.TB) records {
	r, err := newRecords(Config{Hostname: "rknas-test", Instance: "Test NAS (rknas-test)", Port: 443,
		Text: map[string]string{"model": "Test NAS", "board": "test-board"}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// query packs a query with id and questions (name, type, qu: the
// unicast-response bit).
func query(t testing.TB, id uint16, qs ...dnsmessage.Question) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id})
	b.StartQuestions()
	for _, q := range qs {
		if err := b.Question(q); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func q(name string, typ dnsmessage.Type, qu bool) dnsmessage.Question {
	class := dnsmessage.ClassINET
	if qu {
		class |= unicastResponse
	}
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: class}
}

var never = func(string) bool { return false }

func parse(t *testing.T, msg []byte) dnsmessage.Message {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		t.Fatal(err)
	}
	return m
}

var neighbour = netip.MustParseAddrPort("10.78.0.2:5353")

func TestAnswers(t *testing.T) {
	r := testRecords(t)
	tests := []struct {
		name     string
		packet   []byte
		from     netip.AddrPort
		unicast  bool
		answers  []string // "name type" of the answers
		extras   int
		question bool // the question echoed (legacy)
	}{
		{"the service browsed", query(t, 0, q("_https._tcp.local.", dnsmessage.TypePTR, false)), neighbour, false,
			[]string{"_https._tcp.local. TypePTR"}, 4, false},
		{"the host asked for its unicast answer", query(t, 0, q("RKNAS-test.local.", dnsmessage.TypeA, true)), neighbour, true,
			[]string{"rknas-test.local. TypeA"}, 1, false},
		{"the instance, both records", query(t, 0, q("Test NAS (rknas-test)._https._tcp.local.", dnsmessage.TypeALL, false)), neighbour, false,
			[]string{"test nas (rknas-test)._https._tcp.local. TypeSRV", "test nas (rknas-test)._https._tcp.local. TypeTXT"}, 2, false},
		{"the service types", query(t, 0, q("_services._dns-sd._udp.local.", dnsmessage.TypePTR, false)), neighbour, false,
			[]string{"_services._dns-sd._udp.local. TypePTR"}, 0, false},
		{"a one-shot resolver", query(t, 77, q("rknas-test.local.", dnsmessage.TypeAAAA, false)), netip.MustParseAddrPort("10.78.0.2:40000"), true,
			[]string{"rknas-test.local. TypeAAAA"}, 1, true},
		{"a link-local IPv6 neighbour", query(t, 0, q("rknas-test.local.", dnsmessage.TypeAAAA, false)), netip.MustParseAddrPort("[fe80::2%md0]:5353"), false,
			[]string{"rknas-test.local. TypeAAAA"}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, _, err := r.answer(tt.packet, tt.from, testLink, never)
			if err != nil {
				t.Fatal(err)
			}
			if rep.unicast != tt.unicast {
				t.Errorf("unicast %v, want %v", rep.unicast, tt.unicast)
			}
			m := parse(t, rep.msg)
			var got []string
			for _, a := range m.Answers {
				got = append(got, lower(a.Header.Name.String())+" "+a.Header.Type.String())
			}
			if len(got) != len(tt.answers) {
				t.Fatalf("answers %q, want %q", got, tt.answers)
			}
			for i := range got {
				if got[i] != tt.answers[i] {
					t.Errorf("answers %q, want %q", got, tt.answers)
				}
			}
			if len(m.Additionals) != tt.extras {
				t.Errorf("%d additional records, want %d", len(m.Additionals), tt.extras)
			}
			if !m.Header.Response || !m.Header.Authoritative {
				t.Errorf("header %+v", m.Header)
			}
			if tt.question {
				if m.Header.ID != 77 || len(m.Questions) != 1 {
					t.Errorf("a one-shot answer carries ID %d and %d questions, want the query's ID and question", m.Header.ID, len(m.Questions))
				}
				for _, a := range append(m.Answers, m.Additionals...) {
					if a.Header.TTL > legacyTTL || a.Header.Class&cacheFlush != 0 {
						t.Errorf("a one-shot answer's record: TTL %d class %#x", a.Header.TTL, a.Header.Class)
					}
				}
			} else if m.Header.ID != 0 || len(m.Questions) != 0 {
				t.Errorf("an mDNS answer carries ID %d and %d questions", m.Header.ID, len(m.Questions))
			}
		})
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TestQueriesDrawLittle: what anyone on the LAN can send with a forged
// source draws at most one small answer, and only to the link: a query
// from off the link, a header announcing questions it does not hold,
// questions for names the device does not hold, and answers from other
// responders draw nothing; 200 questions draw one answer of the device's
// records alone.
func TestQueriesDrawLittle(t *testing.T) {
	r := testRecords(t)
	var many []dnsmessage.Question
	for range 200 {
		many = append(many, q("_https._tcp.local.", dnsmessage.TypePTR, true))
	}
	rep, _, err := r.answer(query(t, 0, many...), neighbour, testLink, never)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.msg) > 1024 {
		t.Errorf("200 questions drew %d bytes", len(rep.msg))
	}
	empty := query(t, 0)
	empty[5] = 235 // QDCOUNT: 235 questions, none there
	forged := query(t, 0, q("_https._tcp.local.", dnsmessage.TypePTR, true))
	forged[2] |= 0x80 // QR: a response
	for name, tc := range map[string]struct {
		packet []byte
		from   netip.AddrPort
	}{
		"from off the link":             {query(t, 0, q("_https._tcp.local.", dnsmessage.TypePTR, true)), netip.MustParseAddrPort("203.0.113.7:53")},
		"questions announced, not sent": {empty, neighbour},
		"another name":                  {query(t, 0, q("other.local.", dnsmessage.TypeA, true)), neighbour},
		"another class":                 {query(t, 0, dnsmessage.Question{Name: dnsmessage.MustNewName("rknas-test.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassCHAOS}), neighbour},
		"a response":                    {forged, neighbour},
		"garbage":                       {[]byte{1, 2, 3}, neighbour},
	} {
		if rep, _, err := r.answer(tc.packet, tc.from, testLink, never); err == nil || rep.msg != nil {
			t.Errorf("%s: answered %d bytes", name, len(rep.msg))
		}
	}
}

// TestARecordIsMulticastOnceASecond: a record multicast on a link within
// the last second is not multicast again; an answer asked for by unicast
// is still given.
func TestARecordIsMulticastOnceASecond(t *testing.T) {
	r := testRecords(t)
	recent := func(string) bool { return true }
	if _, _, err := r.answer(query(t, 0, q("rknas-test.local.", dnsmessage.TypeA, false)), neighbour, testLink, recent); !errors.Is(err, errNotForUs) {
		t.Errorf("a record multicast a moment ago: %v, want nothing sent", err)
	}
	if rep, _, err := r.answer(query(t, 0, q("rknas-test.local.", dnsmessage.TypeA, true)), neighbour, testLink, recent); err != nil || !rep.unicast {
		t.Errorf("asked for by unicast: %v", err)
	}
}

// TestAnotherDeviceClaimingTheName: an answer from another responder with
// an address record of the device's name that is not one of its own
// addresses is a conflict; one with its own address is not.
func TestAnotherDeviceClaimingTheName(t *testing.T) {
	r := testRecords(t)
	claim := func(a [4]byte) []byte {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true, Authoritative: true})
		b.StartAnswers()
		b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("other.local."), Class: dnsmessage.ClassINET, TTL: 120}, dnsmessage.AResource{A: [4]byte{10, 78, 0, 9}})
		b.AResource(dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("RKNAS-TEST.local."), Class: dnsmessage.ClassINET | cacheFlush, TTL: 120}, dnsmessage.AResource{A: a})
		msg, err := b.Finish()
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	_, conflict, err := r.answer(claim([4]byte{255, 255, 255, 255}), neighbour, testLink, never)
	if conflict != netip.MustParseAddr("255.255.255.255") || !errors.Is(err, errNotForUs) {
		t.Errorf("a claim to the name: conflict %v, err %v", conflict, err)
	}
	if _, conflict, _ := r.answer(claim([4]byte{10, 78, 0, 1}), neighbour, testLink, never); conflict.IsValid() {
		t.Errorf("the device's own address taken for a conflict: %v", conflict)
	}
}

// FuzzAnswer: no packet makes the responder panic, and none draws more
// than one answer of the device's records.
func FuzzAnswer(f *testing.F) {
	f.Add(query(f, 0, q("_https._tcp.local.", dnsmessage.TypePTR, false)), uint16(5353))
	f.Add(query(f, 9, q("rknas-test.local.", dnsmessage.TypeALL, true), q("Test NAS (rknas-test)._https._tcp.local.", dnsmessage.TypeSRV, false)), uint16(40000))
	r := testRecords(f)
	f.Fuzz(func(t *testing.T, packet []byte, port uint16) {
		rep, _, err := r.answer(packet, netip.AddrPortFrom(neighbour.Addr(), port), testLink, never)
		if err == nil && len(rep.msg) > 1024 {
			t.Fatalf("%d bytes answered", len(rep.msg))
		}
	})
}
