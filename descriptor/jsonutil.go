package descriptor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Error is a rejected parameter. Key is the JSON path of the offending value
// ("scopes[2].name", "oauth2-configuration.token-validity", "xsappname"), or
// empty when the parameters as a whole are wrong (not JSON, not an object).
// The broker puts Error() into the description of its OSB 400 answer, so the
// user learns which key to fix.
type Error struct {
	Key    string
	Reason string
}

// Error renders "key: reason", or the reason alone for the document as a whole.
func (e *Error) Error() string {
	if e.Key == "" {
		return e.Reason
	}
	return e.Key + ": " + e.Reason
}

func errorf(key, format string, args ...any) *Error {
	return &Error{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// jsonKind is the JSON type of a raw value.
type jsonKind int

const (
	kindNull jsonKind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k jsonKind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

// kindOf reports the type of a syntactically valid raw value.
func kindOf(raw []byte) jsonKind {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return kindNull
	}
	switch raw[0] {
	case 'n':
		return kindNull
	case 't', 'f':
		return kindBool
	case '"':
		return kindString
	case '[':
		return kindArray
	case '{':
		return kindObject
	default:
		return kindNumber
	}
}

// child and elem build the JSON paths used as Error keys.
func child(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func elem(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// member is one key/value pair of a JSON object, kept in document order.
type member struct {
	key string
	val json.RawMessage
}

// isEmptyParams reports whether raw stands for "no parameters".
func isEmptyParams(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// topLevel checks that raw is valid JSON holding an object and returns its
// members. Empty input and null count as an empty object.
func topLevel(raw []byte) ([]member, error) {
	if isEmptyParams(raw) {
		return nil, nil
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return nil, &Error{Reason: fmt.Sprintf("parameters are not valid JSON: %v", err)}
	}
	if k := kindOf(raw); k != kindObject {
		return nil, &Error{Reason: fmt.Sprintf("parameters must be a JSON object, not %s", k)}
	}
	return members(raw, "")
}

// members splits a JSON object into its members in document order. Keys are
// trimmed because SAP's own documentation has keys with a trailing space
// ("system-attributes "). A key given twice (also after trimming) is refused:
// which of the two values counts would be a guess. null yields no members;
// any other non-object is an error naming path.
func members(raw json.RawMessage, path string) ([]member, error) {
	switch k := kindOf(raw); k {
	case kindNull:
		return nil, nil
	case kindObject:
	default:
		return nil, errorf(path, "must be an object, not %s", k)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, errorf(path, "%v", err)
	}
	var out []member
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, errorf(path, "%v", err)
		}
		key := strings.TrimSpace(t.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errorf(child(path, key), "%v", err)
		}
		if seen[key] {
			return nil, errorf(child(path, key), "key is given more than once")
		}
		seen[key] = true
		out = append(out, member{key: key, val: v})
	}
	return out, nil
}

// object is members for values that must be an object (null refused).
func object(raw json.RawMessage, path string) ([]member, error) {
	if kindOf(raw) == kindNull {
		return nil, errorf(path, "must be an object, not null")
	}
	return members(raw, path)
}

// array returns the elements of a JSON array; null yields nil.
func array(raw json.RawMessage, path string) ([]json.RawMessage, error) {
	switch k := kindOf(raw); k {
	case kindNull:
		return nil, nil
	case kindArray:
	default:
		return nil, errorf(path, "must be an array, not %s", k)
	}
	var out []json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, errorf(path, "%v", err)
	}
	return out, nil
}

// str decodes a string; null yields "".
func str(raw json.RawMessage, path string) (string, error) {
	switch k := kindOf(raw); k {
	case kindNull:
		return "", nil
	case kindString:
	default:
		return "", errorf(path, "must be a string, not %s", k)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errorf(path, "%v", err)
	}
	return s, nil
}

// strList decodes an array of strings. null yields nil, [] an empty non-nil
// slice (callers that care about the difference keep it). Elements must be
// strings; null elements are refused.
func strList(raw json.RawMessage, path string) ([]string, error) {
	elems, err := array(raw, path)
	if err != nil || elems == nil {
		return nil, err
	}
	out := make([]string, 0, len(elems))
	for i, e := range elems {
		if k := kindOf(e); k != kindString {
			return nil, errorf(elem(path, i), "must be a string, not %s", k)
		}
		s, err := str(e, elem(path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// nilIfEmpty normalises [] to nil where the two mean the same, so that a
// parsed value survives a JSON round trip through omitempty fields unchanged.
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// integer decodes an integral JSON number (300 and 300.0 both work); null
// yields present=false.
func integer(raw json.RawMessage, path string) (n int, present bool, err error) {
	switch k := kindOf(raw); k {
	case kindNull:
		return 0, false, nil
	case kindNumber:
	default:
		return 0, false, errorf(path, "must be an integer, not %s", k)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false, errorf(path, "must be an integer: %v", err)
	}
	if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, false, errorf(path, "must be an integer between %d and %d, got %s", math.MinInt32, math.MaxInt32, bytes.TrimSpace(raw))
	}
	return int(f), true, nil
}

// boolean decodes a JSON boolean; null yields nil.
func boolean(raw json.RawMessage, path string) (*bool, error) {
	switch k := kindOf(raw); k {
	case kindNull:
		return nil, nil
	case kindBool:
	default:
		return nil, errorf(path, "must be a boolean, not %s", k)
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errorf(path, "%v", err)
	}
	return &b, nil
}

// boolish decodes a boolean given either as JSON boolean or as the string
// "true"/"false": SAP documents several flags as strings, and users write
// them both ways. null yields nil.
func boolish(raw json.RawMessage, path string) (*bool, error) {
	if kindOf(raw) == kindString {
		s, err := str(raw, path)
		if err != nil {
			return nil, err
		}
		switch s {
		case "true":
			b := true
			return &b, nil
		case "false":
			b := false
			return &b, nil
		}
		return nil, errorf(path, `must be true or false, got %q`, s)
	}
	b, err := boolean(raw, path)
	if err != nil {
		return nil, errorf(path, `must be true or false, not %s`, kindOf(raw))
	}
	return b, nil
}

// stringMap decodes an object whose values are all strings; null yields nil,
// {} an empty map.
func stringMap(raw json.RawMessage, path string) (map[string]string, error) {
	if kindOf(raw) == kindNull {
		return nil, nil
	}
	ms, err := members(raw, path)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		p := child(path, m.key)
		if k := kindOf(m.val); k != kindString {
			return nil, errorf(p, "must be a string, not %s", k)
		}
		s, err := str(m.val, p)
		if err != nil {
			return nil, err
		}
		out[m.key] = s
	}
	return out, nil
}

// oneOf reports whether s is one of the allowed values.
func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// onlyChars reports whether every byte of s satisfies ok (all allowed
// characters are ASCII, so checking bytes also refuses any non-ASCII rune).
func onlyChars(s string, ok func(c byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
