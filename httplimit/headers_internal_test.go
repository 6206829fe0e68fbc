package httplimit

import "testing"

// Policy names are ids, which may hold a quote or a backslash: a Structured Field String escapes
// them, and only them.
func TestPolicyNamesAreStructuredFieldStrings(t *testing.T) {
	for in, want := range map[string]string{
		"acme/rpm":  `"acme/rpm"`,
		`a"b\c`:     `"a\"b\\c"`,
		"tokens":    `"tokens"`,
		`\`:         `"\\"`,
		`x"y`:       `"x\"y"`,
		"~!#$%&'()": `"~!#$%&'()"`,
	} {
		if got := sfString(in); got != want {
			t.Errorf("sfString(%q) = %s, want %s", in, got, want)
		}
	}
}
