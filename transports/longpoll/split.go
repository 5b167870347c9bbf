package longpoll

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// errNotArray is splitDeep's answer to a body that is not a JSON array.
var errNotArray = errors.New("longpoll: not a JSON array")

// splitDeep returns the elements of data, a JSON array, each a slice of
// data, checking the array's syntax at any depth: unlike broker.SplitArray it
// has no nesting bound, so that an element nested too deeply is split out
// and refused on its own by the broker. It keeps no recursion (the decoder's
// tokens keep their nesting on the heap), and it is slow: it is for the
// bodies that SplitArray refused.
func splitDeep(data []byte) ([][]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errNotArray
	}
	var items [][]byte
	for dec.More() {
		start := dec.InputOffset()
		depth := 0
		for {
			tok, err := dec.Token()
			if err != nil {
				return nil, errNotArray
			}
			switch tok {
			case json.Delim('['), json.Delim('{'):
				depth++
			case json.Delim(']'), json.Delim('}'):
				depth--
			}
			if depth == 0 {
				break
			}
		}
		// The element's text: from the end of the token before it (a ',' and
		// spaces may come first) to the end of its last token.
		item := bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n,")
		items = append(items, item)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, errNotArray
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotArray
	}
	return items, nil
}
