// An independent reader of the pprof profiles `dynostats pprof` writes:
// only Go's standard library and a protobuf decoder written here from the
// field numbers of google/pprof's proto/profile.proto (Apache-2.0), so it
// shares no code with the writer (Rust) nor with pprof's own decoder.
//
// Usage: go run tests/pprof/decode.go PROFILE.pb.gz
//
// Prints one JSON object: the sample types, the period, the comments, and
// every sample as its stack of function names (root first), its values and
// its string labels. Exits 1 on anything that is not a well-formed profile:
// a truncated field, an unknown wire type, a string index or location id
// that points nowhere, a sample with another number of values than sample
// types, a string table that does not start with "".
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

type field struct {
	num   uint64
	wire  uint64
	value uint64 // varint fields
	bytes []byte // length-delimited fields
}

func varint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	fail("truncated or overlong varint")
	return 0, 0
}

func fields(b []byte) []field {
	var out []field
	for len(b) > 0 {
		key, n := varint(b)
		b = b[n:]
		f := field{num: key >> 3, wire: key & 7}
		switch f.wire {
		case 0:
			f.value, n = varint(b)
			b = b[n:]
		case 2:
			l, n := varint(b)
			b = b[n:]
			if l > uint64(len(b)) {
				fail("length beyond the message")
			}
			f.bytes, b = b[:l], b[l:]
		default:
			fail(fmt.Sprintf("wire type %d of field %d", f.wire, f.num))
		}
		out = append(out, f)
	}
	return out
}

// The values of a repeated varint field, packed or not.
func repeated(fs []field, num uint64) []uint64 {
	var out []uint64
	for _, f := range fs {
		if f.num != num {
			continue
		}
		if f.wire == 0 {
			out = append(out, f.value)
			continue
		}
		for b := f.bytes; len(b) > 0; {
			v, n := varint(b)
			out = append(out, v)
			b = b[n:]
		}
	}
	return out
}

func scalar(fs []field, num uint64) uint64 {
	var v uint64
	for _, f := range fs {
		if f.num == num && f.wire == 0 {
			v = f.value
		}
	}
	return v
}

func fail(why string) {
	fmt.Fprintln(os.Stderr, "decode:", why)
	os.Exit(1)
}

type sample struct {
	Stack  []string          `json:"stack"`
	Values []int64           `json:"values"`
	Labels map[string]string `json:"labels"`
}

type profile struct {
	SampleTypes [][2]string `json:"sample_types"`
	Default     string      `json:"default_sample_type"`
	Period      int64       `json:"period"`
	PeriodType  [2]string   `json:"period_type"`
	Comments    []string    `json:"comments"`
	Samples     []sample    `json:"samples"`
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: decode PROFILE.pb.gz")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err.Error())
	}
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			fail(err.Error())
		}
		if raw, err = io.ReadAll(zr); err != nil {
			fail(err.Error())
		}
	}
	top := fields(raw)
	var strs []string
	for _, f := range top {
		if f.num == 6 {
			strs = append(strs, string(f.bytes))
		}
	}
	if len(strs) == 0 || strs[0] != "" {
		fail("the string table does not start with \"\"")
	}
	str := func(i uint64) string {
		if i >= uint64(len(strs)) {
			fail(fmt.Sprintf("string index %d beyond the table", i))
		}
		return strs[i]
	}
	functions := map[uint64]string{}
	locations := map[uint64]uint64{}
	var p profile
	for _, f := range top {
		switch f.num {
		case 1:
			vt := fields(f.bytes)
			p.SampleTypes = append(p.SampleTypes, [2]string{str(scalar(vt, 1)), str(scalar(vt, 2))})
		case 4:
			loc := fields(f.bytes)
			var lines []uint64
			for _, g := range loc {
				if g.num == 4 {
					lines = append(lines, scalar(fields(g.bytes), 1))
				}
			}
			if len(lines) != 1 {
				fail("a location without exactly one line")
			}
			locations[scalar(loc, 1)] = lines[0]
		case 5:
			fn := fields(f.bytes)
			functions[scalar(fn, 1)] = str(scalar(fn, 2))
		case 11:
			pt := fields(f.bytes)
			p.PeriodType = [2]string{str(scalar(pt, 1)), str(scalar(pt, 2))}
		case 12:
			p.Period = int64(f.value)
		case 14:
			p.Default = str(f.value)
		}
	}
	for _, c := range repeated(top, 13) {
		p.Comments = append(p.Comments, str(c))
	}
	for _, f := range top {
		if f.num != 2 {
			continue
		}
		fs := fields(f.bytes)
		s := sample{Labels: map[string]string{}}
		ids := repeated(fs, 1)
		// Leaf first in the file; root first here.
		for i := len(ids) - 1; i >= 0; i-- {
			fn, ok := locations[ids[i]]
			if !ok {
				fail(fmt.Sprintf("location %d not in the profile", ids[i]))
			}
			name, ok := functions[fn]
			if !ok {
				fail(fmt.Sprintf("function %d not in the profile", fn))
			}
			s.Stack = append(s.Stack, name)
		}
		for _, v := range repeated(fs, 2) {
			s.Values = append(s.Values, int64(v))
		}
		if len(s.Values) != len(p.SampleTypes) {
			fail("a sample's values do not match the sample types")
		}
		for _, g := range fs {
			if g.num == 3 {
				l := fields(g.bytes)
				k := str(scalar(l, 1))
				if _, dup := s.Labels[k]; dup {
					fail("label " + k + " twice on one sample")
				}
				s.Labels[k] = str(scalar(l, 2))
			}
		}
		p.Samples = append(p.Samples, s)
	}
	out, err := json.Marshal(p)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println(string(out))
}
