// xsuaa.md §10 check 17: the SAP Cloud SDK finds the binding in a
// VCAP_SERVICES built the way Cloud Foundry builds it (osb.md B.6) and
// fetches tokens that xssec validates: client credentials, and with a user
// token (alice of the seed file, role collection "SDK User Viewer")
// serviceToken({jwt}) and jwtBearerToken().

import assert from 'node:assert/strict';
import {
  before, beforeEach, describe, test,
} from 'node:test';
import { jwtBearerToken, serviceToken } from '@sap-cloud-sdk/connectivity';
import { XsuaaService, createSecurityContext } from '@sap/xssec';

import {
  decodeJwt, newWorkspace, seedUsers, xsuaaCatalog,
} from './harness.mjs';

const ws = newWorkspace();

// The SDK keeps one XsuaaService per client id for the life of the process
// (environment-accessor/xsuaa.js), so each credential variant below uses an
// instance (client) of its own.
let offering;
let plan;
let secretBinding;  // instance sdk-app, binding-secret
let x509Binding;    // instance sdk-x509, x509
let revokedBinding; // instance sdk-revoked, unbound again
let userBinding;    // instance sdk-user, with a role collection for alice

/** One VCAP_SERVICES entry, keys in the order Cloud Controller writes them. */
function vcapEntry({ instance, ...binding }) {
  return {
    name: instance.name,
    instance_guid: instance.id,
    instance_name: instance.name,
    binding_guid: binding.bindingId,
    binding_name: null,
    credentials: binding.credentials,
    syslog_drain_url: null,
    volume_mounts: [],
    label: offering.name,
    provider: null,
    plan: plan.name,
    tags: offering.tags ?? [],
  };
}

function setVcap(binding) {
  process.env.VCAP_SERVICES = JSON.stringify({ [offering.name]: [vcapEntry(binding)] });
}

before(async () => {
  // Only VCAP_SERVICES may supply bindings here.
  delete process.env.VCAP_SERVICES_FILE_PATH;
  delete process.env.SERVICE_BINDING_ROOT;
  ({ service: offering, plan } = await xsuaaCatalog());
  // What CF would put into label/tags comes from the broker's catalog.
  assert.equal(offering.name, 'xsuaa');
  assert.ok(offering.tags?.includes('xsuaa'), `offering tags ${JSON.stringify(offering.tags)}`);
  const descriptor = (xsappname) => ({
    xsappname, scopes: [{ name: '$XSAPPNAME.Read' }], authorities: ['$XSAPPNAME.Read'],
  });
  const app = await ws.provision(descriptor('sdk-app'), { name: 'sdk-app-uaa' });
  secretBinding = { instance: app, ...await ws.bind(app.id) };
  const x509 = await ws.provision(descriptor('sdk-x509'), { name: 'sdk-x509-uaa' });
  x509Binding = {
    instance: x509,
    ...await ws.bind(x509.id, {
      'credential-type': 'x509',
      x509: { 'key-length': 2048, validity: 7, 'validity-type': 'DAYS' },
    }),
  };
  const revoked = await ws.provision(descriptor('sdk-revoked'), { name: 'sdk-revoked-uaa' });
  revokedBinding = { instance: revoked, ...await ws.bind(revoked.id) };
  assert.equal(await ws.unbind(revoked.id, revokedBinding.bindingId), 200);
  const user = await ws.provision({
    ...descriptor('sdk-user'),
    'role-templates': [{ name: 'Viewer', 'scope-references': ['$XSAPPNAME.Read'] }],
    'role-collections': [{ name: 'SDK User Viewer', 'role-template-references': ['$XSAPPNAME.Viewer'] }],
  }, { name: 'sdk-user-uaa' });
  userBinding = { instance: user, ...await ws.bind(user.id) };
});

beforeEach(() => setVcap(secretBinding));

async function assertValid(jwt, creds) {
  const { payload } = decodeJwt(jwt);
  assert.equal(payload.azp, creds.clientid);
  assert.equal(payload.ext_attr?.enhancer, 'XSUAA');
  const ctx = await createSecurityContext(new XsuaaService(creds), { jwt });
  assert.equal(ctx.getUserName(), `client/${creds.clientid}`);
  assert.equal(ctx.getZoneId(), creds.tenantid);
  assert.equal(ctx.checkLocalScope('Read'), true);
  return payload;
}

test("serviceToken('xsuaa') with a secret binding", async () => {
  const jwt = await serviceToken('xsuaa', { useCache: false });
  await assertValid(jwt, secretBinding.credentials);
});

test("serviceToken('xsuaa', {jwt}) fetches in the JWT's zone (zid)", async () => {
  const first = await serviceToken('xsuaa', { useCache: false });
  const jwt = await serviceToken('xsuaa', { jwt: first, useCache: false });
  const payload = await assertValid(jwt, secretBinding.credentials);
  assert.equal(payload.zid, decodeJwt(first).payload.zid);
  assert.notEqual(payload.jti, decodeJwt(first).payload.jti);
});

test("serviceToken('xsuaa') with an x509 binding (mTLS)", async () => {
  setVcap(x509Binding);
  assert.equal(x509Binding.credentials.clientsecret, undefined);
  const jwt = await serviceToken('xsuaa', { useCache: false });
  await assertValid(jwt, x509Binding.credentials);
});

test("serviceToken('xsuaa') fails with the secret of a deleted binding", async () => {
  setVcap(revokedBinding);
  await assert.rejects(serviceToken('xsuaa', { useCache: false }), (err) => {
    assert.match(err.message, /Could not fetch client credentials token/);
    // The SDK re-wraps xssec's ResponseError; only the message keeps the status.
    assert.match(err.cause?.message ?? '', /was 401/, err.stack);
    return true;
  });
});

describe('check 17 with a user token', () => {
  let userJwt;
  let userClaims;

  before(async () => {
    const { alice } = seedUsers;
    userJwt = (await new XsuaaService(userBinding.credentials).fetchPasswordToken(alice.username, alice.password)).access_token;
    userClaims = decodeJwt(userJwt).payload;
    assert.equal(userClaims.user_name, alice.username);
  });

  beforeEach(() => setVcap(userBinding));

  test("serviceToken('xsuaa', {jwt: userToken}) → a client credentials token in the user's zone", async () => {
    const jwt = await serviceToken('xsuaa', { jwt: userJwt, useCache: false });
    const payload = await assertValid(jwt, userBinding.credentials);
    assert.equal(payload.grant_type, 'client_credentials');
    assert.equal(payload.zid, userClaims.zid);
    assert.equal(payload.user_name, undefined);
  });

  test("jwtBearerToken(userToken, 'xsuaa') → the user's token for the binding's client", async () => {
    const jwt = await jwtBearerToken(userJwt, 'xsuaa');
    const { payload } = decodeJwt(jwt);
    const creds = userBinding.credentials;
    assert.equal(payload.azp, creds.clientid);
    assert.equal(payload.grant_type, 'urn:ietf:params:oauth:grant-type:jwt-bearer');
    assert.notEqual(payload.jti, userClaims.jti);
    const ctx = await createSecurityContext(new XsuaaService(creds), { jwt });
    assert.equal(ctx.getLogonName(), seedUsers.alice.username);
    assert.equal(ctx.getEmail(), seedUsers.alice.email);
    assert.equal(ctx.getZoneId(), userClaims.zid);
    assert.equal(ctx.checkLocalScope('Read'), true);
  });

  test("jwtBearerToken(userToken of bob, 'xsuaa') → valid, without the scope", async () => {
    const { bob } = seedUsers;
    const bobJwt = (await new XsuaaService(userBinding.credentials).fetchPasswordToken(bob.username, bob.password)).access_token;
    const jwt = await jwtBearerToken(bobJwt, 'xsuaa');
    const ctx = await createSecurityContext(new XsuaaService(userBinding.credentials), { jwt });
    assert.equal(ctx.getLogonName(), bob.username);
    assert.equal(ctx.checkLocalScope('Read'), false);
  });
});
