package lvm

// MaxTagLen is the maximum length of an LVM tag.
const MaxTagLen = 1024

// MaxNameLen is the maximum length of a VG or LV name accepted by ValidName.
const MaxNameLen = 127

// ValidTag reports whether s is a valid LVM tag: 1 to 1024 characters out of
// [A-Za-z0-9_+.-/=!:&#].
func ValidTag(s string) bool {
	if len(s) == 0 || len(s) > MaxTagLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			switch s[i] {
			case '_', '+', '.', '-', '/', '=', '!', ':', '&', '#':
			default:
				return false
			}
		}
	}
	return true
}

// ValidName reports whether s is usable as a VG or LV name: 1 to 127
// characters out of [A-Za-z0-9+_.-], not starting with '-' and not "." or
// "..". lvm applies further restrictions (reserved prefixes and suffixes)
// which it reports itself.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] == '-' || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			switch s[i] {
			case '+', '_', '.', '-':
			default:
				return false
			}
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

// ValidUUID reports whether s is an LVM UUID: 32 letters and digits, optionally with
// dashes after the first (lvm prints them 6-4-4-4-4-4-6).
func ValidUUID(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		switch {
		case isAlnum(s[i]):
			n++
		case s[i] == '-':
		default:
			return false
		}
	}
	return n == 32
}
