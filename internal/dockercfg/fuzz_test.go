package dockercfg

import (
	"bytes"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts renders to a payload that parses
// back to an equal config and renders to the same bytes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://reg.example.com/":{"auth":"dTpw"}}}`))
	f.Add([]byte(`{"reg.example.com":{"username":"u","password":"p","email":"e"}}`))
	f.Add([]byte(`{"auths":{"h":{"auth":"dTpw","username":"u","password":"p"},"H":{"auth":"dTpw"}}}`))
	f.Add([]byte(`{"auths":null}`))
	f.Add([]byte(`{"auths":{"h":{"identitytoken":"x"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out := c.Render()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("rendered payload does not parse: %v\n%s", err, out)
		}
		if !Equal(c, back) {
			t.Fatalf("round trip changed the config:\n%v\n%v", c.Auths, back.Auths)
		}
		if again := back.Render(); !bytes.Equal(out, again) {
			t.Fatalf("render is not stable:\n%s\n%s", out, again)
		}
	})
}
