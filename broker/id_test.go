package broker

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pivotal-cf/brokerapi/v10/domain/apiresponses"
)

func TestCheckID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"4f1c2b3a-0000-4000-8000-000000000001", true},
		{strings.Repeat("a", MaxIDBytes), true},
		{strings.Repeat("a", MaxIDBytes+1), false},
		{"bad\xff", false},
	} {
		err := checkID("instance_id", tc.id)
		if tc.ok != (err == nil) {
			t.Fatalf("%.20q: %v", tc.id, err)
		}
		if err != nil {
			fr, ok := err.(*apiresponses.FailureResponse)
			if !ok || fr.ValidatedStatusCode(nil) != http.StatusBadRequest {
				t.Fatalf("%.20q: %v is not a 400", tc.id, err)
			}
		}
	}
}
