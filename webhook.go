package spendcap

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// SignatureHeader is the header of a webhook request that holds its signature (SignWebhook).
const SignatureHeader = "Spendcap-Signature"

// SignWebhook is the signature of a webhook body under secret: the lowercase hex HMAC-SHA256 of
// the body's exact bytes.
func SignWebhook(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhook says whether signature (the SignatureHeader of a request) is body's under secret,
// in constant time. A receiver checks it on the raw body before decoding it as an Event.
func VerifyWebhook(secret string, body []byte, signature string) bool {
	want, err := hex.DecodeString(signature)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(m.Sum(nil), want)
}
