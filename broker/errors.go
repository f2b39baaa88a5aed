package broker

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pivotal-cf/brokerapi/v10/domain/apiresponses"
)

// badRequest is the OSB answer for invalid input: 400 with a description that
// names the offending key. Never 422: Cloud Controller orphan-mitigates a 422
// it does not know.
func badRequest(format string, args ...any) error {
	return apiresponses.NewFailureResponseBuilder(fmt.Errorf(format, args...), http.StatusBadRequest, "bad-request").
		WithErrorKey("BadRequest").Build()
}

func notFound(format string, args ...any) error {
	return apiresponses.NewFailureResponseBuilder(fmt.Errorf(format, args...), http.StatusNotFound, "not-found").
		WithErrorKey("NotFound").Build()
}

// osbError unwraps a FailureResponse from err: brokerapi's handlers switch on
// the dynamic type, so a wrapped one would become a 500.
func osbError(err error) error {
	var fr *apiresponses.FailureResponse
	if errors.As(err, &fr) {
		return fr
	}
	return err
}
