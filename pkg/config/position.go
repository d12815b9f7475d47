package config

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The TOML decoder knows the line of every key but keeps it private; it only
// shows it in the ParseError it returns when a value's UnmarshalTOML fails.
// So to find where a key is defined, the document is decoded once more into
// a struct that reaches exactly that key and fails there. That costs one
// parse per reported problem, which is nothing next to an operator's time.

var errProbe = errors.New("config: probe")

// probe fails when decoded, so the decoder reports its key's position.
type probe struct{}

func (probe) UnmarshalTOML(any) error { return errProbe }

// ignore accepts any value; it shadows siblings of a probed key that differ
// only in case, because the decoder falls back to case-insensitive matching.
type ignore struct{}

func (ignore) UnmarshalTOML(any) error { return nil }

// lineOf returns the line on which key is defined. For a table that is only
// implied by dotted keys below it, that is the line of its first key; if the
// key itself cannot be found, the line of its nearest ancestor. 0 if none.
func lineOf(doc string, root map[string]any, md toml.MetaData, key []string) int {
	if n := probeLine(doc, root, key); n > 0 {
		return n
	}
	for _, k := range md.Keys() {
		if len(k) > len(key) && slices.Equal([]string(k[:len(key)]), key) {
			if n := probeLine(doc, root, k); n > 0 {
				return n
			}
			break
		}
	}
	for i := len(key) - 1; i > 0; i-- {
		if n := probeLine(doc, root, key[:i]); n > 0 {
			return n
		}
	}
	return 0
}

func probeLine(doc string, root map[string]any, key []string) int {
	typ, ok := probeType(root, key)
	if !ok {
		return 0
	}
	_, err := toml.Decode(doc, reflect.New(typ).Interface())
	var pe toml.ParseError
	if !errors.As(err, &pe) || pe.Message != errProbe.Error() || pe.LastKey != toml.Key(key).String() {
		return 0
	}
	return pe.Position.Line
}

// probeType builds struct{ K1 struct{ K2 ... probe } }, with ignore fields
// for siblings that match a key only when case is ignored.
func probeType(root map[string]any, key []string) (reflect.Type, bool) {
	if len(key) == 0 {
		return nil, false
	}
	tables := make([]map[string]any, len(key))
	m := root
	for i, k := range key {
		tables[i] = m
		m, _ = m[k].(map[string]any)
	}
	typ := reflect.TypeFor[probe]()
	for i := len(key) - 1; i >= 0; i-- {
		if !tagSafe(key[i]) {
			return nil, false
		}
		fields := []reflect.StructField{{Name: "Probe", Type: typ, Tag: tomlTag(key[i])}}
		for sibling := range tables[i] {
			if sibling != key[i] && strings.EqualFold(sibling, key[i]) && tagSafe(sibling) {
				fields = append(fields, reflect.StructField{
					Name: "Other" + strconv.Itoa(len(fields)),
					Type: reflect.TypeFor[ignore](),
					Tag:  tomlTag(sibling),
				})
			}
		}
		typ = reflect.StructOf(fields)
	}
	return typ, true
}

// tagSafe reports whether a key can be written as a struct tag name: the
// decoder cuts tag names at a comma, and "-" or "" mean something else.
func tagSafe(k string) bool {
	return k != "" && k != "-" && !strings.Contains(k, ",")
}

func tomlTag(k string) reflect.StructTag {
	return reflect.StructTag("toml:" + strconv.Quote(k))
}
