// Command broker runs the Open Service Broker for the xsuaa and identity
// offerings, with its embedded token server.
//
//	broker [serve] [flags]   run the broker (the default)
//	broker rotate-keys       make a new token signing key (running broker)
//	broker backup -o FILE    copy a running broker's store
//	broker help              list the subcommands
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := loadConfig(args, getenv)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout)
	case "rotate-keys":
		return rotateKeys(args, adminEnv(getenv), stdout)
	case "backup":
		return backupCmd(args, adminEnv(getenv), stdout)
	case "users":
		return usersCmd(args, adminEnv(getenv), os.Stdin, stdout)
	case "role-collections":
		return roleCollectionsCmd(args, adminEnv(getenv), stdout)
	case "create-service":
		return createServiceCmd(ctx, args, getenv, stdout, stderr)
	case "update-service":
		return updateServiceCmd(ctx, args, getenv, stdout, stderr)
	case "delete-service":
		return deleteServiceCmd(ctx, args, getenv, os.Stdin, stdout, stderr)
	case "services":
		return servicesCmd(args, getenv, stdout, stderr)
	case "create-service-key":
		return createServiceKeyCmd(ctx, args, getenv, stdout, stderr)
	case "service-key":
		return serviceKeyCmd(ctx, args, getenv, stdout, stderr)
	case "delete-service-key":
		return deleteServiceKeyCmd(ctx, args, getenv, stdout, stderr)
	case "bind":
		return bindCmd(ctx, args, getenv, stdout, stderr)
	case "unbind":
		return unbindCmd(ctx, args, getenv, stdout, stderr)
	case "env":
		return envCmd(args, getenv, stdout, stderr)
	case "default-env":
		return defaultEnvCmd(args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return errors.New("unknown subcommand " + cmd + " (try 'broker help')")
	}
}

const usage = `usage: broker <subcommand> [flags]

subcommands:
  serve         run the broker (the default); 'broker serve -h' lists the flags
  rotate-keys   make a new token signing key on a running broker
  backup -o FILE
                a consistent copy of a running broker's store (bbolt)
  users         create|list|delete|set-password users of the zone
  role-collections
                create|list|delete|assign|unassign role collections
  help          this text

Cloud Foundry-style subcommands (the broker spoken to as Cloud Controller
does; names kept in $BROKER_CF_STATE, default
~/.config/btp-security-broker/cf-state.json, flag -state; -json for JSON):
  create-service SERVICE PLAN NAME [-c PARAMS] [-t TAGS] [-org O] [-space S]
  update-service NAME [-p PLAN] [-c PARAMS] [-t TAGS]
  delete-service NAME [-f]       unbinds apps and deletes keys first
  services                       the local service instances
  create-service-key NAME KEY [-c PARAMS]
  service-key NAME KEY           the key's credentials
  delete-service-key NAME KEY
  bind NAME APP [-c PARAMS] [-binding-name B]
  unbind NAME APP
  env APP                        VCAP_SERVICES and VCAP_APPLICATION of APP
  default-env APP [-o FILE]      write them to default-env.json (approuter,
                                 @sap/xsenv loadEnv, CAP)
  PARAMS is a JSON object inline or a file name (e.g. xs-security.json).

Operator subcommands find the broker through BROKER_URL, BROKER_CA,
BROKER_USERNAME and BROKER_PASSWORD (BROKER_ADMIN_USERNAME and
BROKER_ADMIN_PASSWORD instead, when set, for users, role-collections,
rotate-keys and backup) (flags -url, -ca, -username,
-operator-password; -password is the user's password in 'users').
`

// adminEnv makes the operator subcommands use BROKER_ADMIN_USERNAME and
// BROKER_ADMIN_PASSWORD when they are set (the broker then protects /admin
// with them instead of the OSB credentials).
func adminEnv(getenv func(string) string) func(string) string {
	return func(k string) string {
		switch k {
		case "BROKER_USERNAME", "BROKER_PASSWORD":
			if v := getenv("BROKER_ADMIN_" + k[len("BROKER_"):]); v != "" {
				return v
			}
		}
		return getenv(k)
	}
}
