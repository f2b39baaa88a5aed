//go:build openssl && cgo

package rsasign

/*
#cgo LDFLAGS: -lcrypto
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static EVP_PKEY *rsasign_load(const unsigned char *der, long len) {
	const unsigned char *p = der;
	return d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, len);
}

// rsasign_ctx prepares a signing context once; it is reused for many
// signatures (fetching the algorithm per signature costs as much as a
// good part of the signature itself in OpenSSL 3).
static EVP_PKEY_CTX *rsasign_ctx(EVP_PKEY *pkey) {
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL) return NULL;
	if (EVP_PKEY_sign_init(ctx) <= 0
	    || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) <= 0
	    || EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) <= 0) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int rsasign_sign(EVP_PKEY_CTX *ctx, const unsigned char *dgst, size_t dlen, unsigned char *sig, size_t *siglen) {
	return EVP_PKEY_sign(ctx, sig, siglen, dgst, dlen) > 0;
}
*/
import "C"

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"runtime"
	"unsafe"
)

// Implementation names the signer this binary was built with.
const Implementation = "openssl"

type sslSigner struct {
	pkey *C.EVP_PKEY
	size int
	// ctxs is a bounded free list of prepared contexts: an
	// EVP_PKEY_CTX must not be used by two goroutines at once.
	ctxs chan *C.EVP_PKEY_CTX
}

func newSigner(key *rsa.PrivateKey) (Signer, error) {
	der := x509.MarshalPKCS1PrivateKey(key)
	pkey := C.rsasign_load((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	clear(der)
	if pkey == nil {
		return nil, errors.New("rsasign: OpenSSL could not load the key")
	}
	s := &sslSigner{pkey: pkey, size: key.Size(), ctxs: make(chan *C.EVP_PKEY_CTX, 4*runtime.GOMAXPROCS(0))}
	runtime.SetFinalizer(s, (*sslSigner).free)
	return s, nil
}

func (s *sslSigner) free() {
	for {
		select {
		case c := <-s.ctxs:
			C.EVP_PKEY_CTX_free(c)
		default:
			C.EVP_PKEY_free(s.pkey)
			return
		}
	}
}

func (s *sslSigner) SignSHA256(digest []byte) ([]byte, error) {
	if len(digest) != 32 {
		return nil, errors.New("rsasign: digest must be SHA-256")
	}
	var ctx *C.EVP_PKEY_CTX
	select {
	case ctx = <-s.ctxs:
	default:
		if ctx = C.rsasign_ctx(s.pkey); ctx == nil {
			return nil, errors.New("rsasign: OpenSSL could not prepare a signing context")
		}
	}
	sig := make([]byte, s.size)
	n := C.size_t(len(sig))
	ok := C.rsasign_sign(ctx, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)), (*C.uchar)(unsafe.Pointer(&sig[0])), &n)
	select {
	case s.ctxs <- ctx:
	default:
		C.EVP_PKEY_CTX_free(ctx)
	}
	runtime.KeepAlive(s)
	if ok == 0 {
		return nil, errors.New("rsasign: OpenSSL signing failed")
	}
	return sig[:n], nil
}
