package broker

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The envelope's top level is read by hand rather than by encoding/json:
// field names must match exactly (encoding/json folds case, so "TYPE" would
// pass for "type"), it allocates less, and it needs little stack. Values are
// checked to be valid JSON; nested values are kept raw.

// maxDepth is how deeply a payload may nest.
const maxDepth = 1000

var errSyntax = errors.New("not valid JSON")

// scanEnvelope reads data, a JSON object, into w. A field whose value has the
// wrong JSON type is reported by name; w.ID is set as soon as it is read, so
// that a refusal can carry it as ref.
func scanEnvelope(data []byte, w *wireEnvelope) error {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return errSyntax
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return trailing(data, i+1)
	}
	var typeErr error
	for {
		if i >= len(data) || data[i] != '"' {
			return errSyntax
		}
		kEnd, err := skipString(data, i)
		if err != nil {
			return err
		}
		key := data[i+1 : kEnd-1] // field names we know have no escapes
		i = skipSpace(data, kEnd)
		if i >= len(data) || data[i] != ':' {
			return errSyntax
		}
		vStart := skipSpace(data, i+1)
		vEnd, err := skipValue(data, vStart, 0)
		if err != nil {
			return err
		}
		if err := w.set(key, data[vStart:vEnd]); err != nil && typeErr == nil {
			typeErr = err
		}
		i = skipSpace(data, vEnd)
		if i >= len(data) {
			return errSyntax
		}
		if data[i] == '}' {
			if err := trailing(data, i+1); err != nil {
				return err
			}
			return typeErr
		}
		if data[i] != ',' {
			return errSyntax
		}
		i = skipSpace(data, i+1)
	}
}

// set stores one top-level field; unknown fields are dropped.
func (w *wireEnvelope) set(key, v []byte) error {
	var dst *string
	switch string(key) {
	case "v":
		w.V = v
		return nil
	case "payload":
		w.Payload = v
		return nil
	case "type":
		if t, ok := knownType(v); ok {
			w.Type = t
			return nil
		}
		dst = &w.Type
	case "id":
		dst = &w.ID
	case "room":
		dst = &w.Room
	case "from":
		dst = &w.From
	case "to":
		dst = &w.To
	default:
		return nil
	}
	s, ok := jsonString(v)
	if !ok {
		return fmt.Errorf("field %q must be a JSON string", string(key))
	}
	*dst = s
	return nil
}

// knownType returns v, a JSON string, as the constant of the envelope type
// it names, sparing a copy per envelope.
func knownType(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	switch string(v[1 : len(v)-1]) {
	case TypeMessage:
		return TypeMessage, true
	case TypeCandidate:
		return TypeCandidate, true
	case TypeOffer:
		return TypeOffer, true
	case TypeAnswer:
		return TypeAnswer, true
	case TypeAck:
		return TypeAck, true
	case TypePing:
		return TypePing, true
	case TypeBye:
		return TypeBye, true
	case TypeJoin:
		return TypeJoin, true
	case TypeLeave:
		return TypeLeave, true
	}
	return "", false
}

// jsonString returns the text of v, a JSON value, if it is a string.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(inner), true
}

func trailing(data []byte, i int) error {
	if skipSpace(data, i) != len(data) {
		return errSyntax
	}
	return nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the end of the JSON value that starts at i, checking it.
func skipValue(data []byte, i, depth int) (int, error) {
	if i >= len(data) {
		return 0, errSyntax
	}
	switch c := data[i]; {
	case c == '"':
		return skipString(data, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, fmt.Errorf("nested deeper than %d", maxDepth)
		}
		return skipComposite(data, i, depth+1)
	case c == 't':
		return skipLiteral(data, i, "true")
	case c == 'f':
		return skipLiteral(data, i, "false")
	case c == 'n':
		return skipLiteral(data, i, "null")
	case c == '-' || ('0' <= c && c <= '9'):
		return skipNumber(data, i)
	}
	return 0, errSyntax
}

func skipComposite(data []byte, i, depth int) (int, error) {
	obj := data[i] == '{'
	closer := byte(']')
	if obj {
		closer = '}'
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == closer {
		return i + 1, nil
	}
	for {
		if obj {
			if i >= len(data) || data[i] != '"' {
				return 0, errSyntax
			}
			end, err := skipString(data, i)
			if err != nil {
				return 0, err
			}
			i = skipSpace(data, end)
			if i >= len(data) || data[i] != ':' {
				return 0, errSyntax
			}
			i = skipSpace(data, i+1)
		}
		end, err := skipValue(data, i, depth)
		if err != nil {
			return 0, err
		}
		i = skipSpace(data, end)
		if i >= len(data) {
			return 0, errSyntax
		}
		if data[i] == closer {
			return i + 1, nil
		}
		if data[i] != ',' {
			return 0, errSyntax
		}
		i = skipSpace(data, i+1)
	}
}

func skipString(data []byte, i int) (int, error) {
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1, nil
		case c < 0x20:
			return 0, errSyntax
		case c == '\\':
			i++
			if i >= len(data) {
				return 0, errSyntax
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return 0, errSyntax
				}
				for _, h := range data[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return 0, errSyntax
					}
				}
				i += 4
			default:
				return 0, errSyntax
			}
		}
	}
	return 0, errSyntax
}

func skipLiteral(data []byte, i int, lit string) (int, error) {
	if len(data)-i < len(lit) || string(data[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

func skipNumber(data []byte, i int) (int, error) {
	if data[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case digits() == 0:
		return 0, errSyntax
	}
	if i < len(data) && data[i] == '.' {
		i++
		if digits() == 0 {
			return 0, errSyntax
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, errSyntax
		}
	}
	return i, nil
}

// SplitArray returns the elements of data, a JSON array, each a slice of
// data, checking the whole of it as encoding/json would (bar UTF-8, which
// Decode checks per envelope).
func SplitArray(data []byte) ([][]byte, error) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return nil, errSyntax
	}
	var items [][]byte
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return items, trailing(data, i+1)
	}
	for {
		end, err := skipValue(data, i, 1)
		if err != nil {
			return nil, err
		}
		items = append(items, data[i:end])
		i = skipSpace(data, end)
		switch {
		case i < len(data) && data[i] == ']':
			return items, trailing(data, i+1)
		case i < len(data) && data[i] == ',':
			i = skipSpace(data, i+1)
		default:
			return nil, errSyntax
		}
	}
}

// ValidJSON reports whether data is one JSON value, as json.Valid does (bar
// UTF-8).
func ValidJSON(data []byte) bool {
	end, err := skipValue(data, skipSpace(data, 0), 0)
	return err == nil && trailing(data, end) == nil
}
