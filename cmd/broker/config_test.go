package main

import (
	"strings"
	"testing"
)

func TestPostgresFromVCAP(t *testing.T) {
	tests := []struct {
		name, vcap, want, err string
	}{
		{"none", ``, "", ""},
		{"no postgres", `{"xsuaa":[{"name":"u","tags":["xsuaa"],"credentials":{"url":"https://x"}}]}`, "", ""},
		{"by tag", `{"postgresql-db":[{"name":"db","tags":["postgres","relational"],"credentials":{"uri":"postgres://u:p@h:5432/d"}}]}`, "postgres://u:p@h:5432/d", ""},
		{"by uri scheme", `{"user-provided":[{"name":"db","tags":[],"credentials":{"uri":"postgresql://u:p@h/d"}}]}`, "postgresql://u:p@h/d", ""},
		{"tag without uri", `{"postgres":[{"name":"db","tags":["postgres"],"credentials":{"host":"h"}}]}`, "", ""},
		{"two", `{"a":[{"tags":["postgres"],"credentials":{"uri":"postgres://a"}}],"b":[{"credentials":{"uri":"postgres://b"}}]}`, "", "more than one"},
		{"garbage", `{`, "", "VCAP_SERVICES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := postgresFromVCAP(tc.vcap)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDatabaseNeedsEncryptionKey(t *testing.T) {
	env := map[string]string{"BROKER_DATABASE_URL": "postgres://x@127.0.0.1/db"}
	_, err := loadConfig(nil, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "BROKER_ENCRYPTION_KEY is required") {
		t.Fatalf("a database without BROKER_ENCRYPTION_KEY: %v", err)
	}
	env["BROKER_ENCRYPTION_KEY"] = strings.Repeat("k", 40)
	c, err := loadConfig(nil, func(k string) string { return env[k] })
	if err != nil || c.DatabaseURL != env["BROKER_DATABASE_URL"] {
		t.Fatalf("with a key: %v %+v", err, c)
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("postgres://user:secret@db:5432/broker?sslmode=require"); strings.Contains(got, "secret") {
		t.Fatalf("password in %q", got)
	}
}
