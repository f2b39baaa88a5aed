// identity.md §8.2 checks 10–12 and 16: user tokens (password grant,
// id_token), getIdToken() on an app-to-app access token, jwt-bearer with
// resource= (app2app, consumed-services / provided-apis) and proof-token
// validation (x-client_cert → x-osb_plan). Also the identity refresh grant
// and /oauth2/userinfo. Users come from the seed file (harness.mjs).
//
// Instances (one space): "ias-provider" provides two APIs; "ias-consumer"
// consumes it (its tokens have aud [consumer, provider]); "ias-stranger"
// consumes nothing.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  IdentityService, IdentityServiceSecurityContext, createSecurityContext, errors,
} from '@sap/xssec';

import {
  decodeJwt, newWorkspace, recordRequests, request, seedUsers, selfSignedCertificate,
} from './harness.mjs';

const ws = newWorkspace();
const { alice, bob } = seedUsers;
const PROVIDER = 'ias-provider';
const RESOURCE = `urn:sap:identity:application:provider:name:${PROVIDER}`;
const X509 = {
  'credential-type': 'X509_GENERATED', 'key-length': 2048, validity: 1, 'validity-type': 'DAYS', 'app-identifier': 'consumer',
};
const noCache = { tokenfetch: { cache: { enabled: false } } };

let providerCreds;
let consumerCreds;
let consumerX509;
let strangerCreds;
let alicePassword; // alice's password grant response at the consumer
let recorder;

const audOf = (jwt) => [decodeJwt(jwt).payload.aud].flat();

function rejectsWith(type) {
  return (err) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err.constructor.name}: ${err.message}`);
    return true;
  };
}

function leafPem(creds) {
  return creds.certificate.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)[0];
}

before(async () => {
  recorder = recordRequests();
  const provider = await ws.provision({
    'provided-apis': [
      { name: 'read-orders', description: 'read orders' },
      { name: 'write-orders', description: 'write orders' },
    ],
  }, { name: PROVIDER, offering: 'identity' });
  ({ credentials: providerCreds } = await ws.bind(provider.id));
  const consumer = await ws.provision({ 'consumed-services': [{ 'service-instance-name': PROVIDER }] },
    { name: 'ias-consumer', offering: 'identity' });
  ({ credentials: consumerCreds } = await ws.bind(consumer.id));
  ({ credentials: consumerX509 } = await ws.bind(consumer.id, X509));
  const stranger = await ws.provision({}, { name: 'ias-stranger', offering: 'identity' });
  ({ credentials: strangerCreds } = await ws.bind(stranger.id));
  alicePassword = await new IdentityService(consumerCreds, noCache).fetchPasswordToken(alice.username, alice.password);
});

after(() => recorder.restore());

describe('check 10: fetchPasswordToken', () => {
  test('the response has access_token, id_token and refresh_token', () => {
    for (const k of ['access_token', 'id_token', 'refresh_token']) assert.equal(typeof alicePassword[k], 'string', k);
    assert.equal(alicePassword.token_type.toLowerCase(), 'bearer');
    assert.ok(alicePassword.expires_in > 0);
  });

  test('the id_token validates: email, names, scimId, userId, sap_id_type user', async () => {
    const ctx = await createSecurityContext(new IdentityService(consumerCreds), { jwt: alicePassword.id_token });
    assert.ok(ctx instanceof IdentityServiceSecurityContext, `got ${ctx.constructor.name}`);
    assert.equal(ctx.getEmail(), alice.email);
    assert.equal(ctx.getGivenName(), alice.given_name);
    assert.equal(ctx.getFamilyName(), alice.family_name);
    assert.equal(typeof ctx.token.scimId, 'string');
    assert.ok(ctx.token.scimId.length > 0);
    assert.equal(typeof ctx.token.userId, 'string');
    assert.ok(ctx.token.userId.length > 0);
    assert.equal(ctx.token.idType, 'user');
    assert.equal(ctx.token.appTid, consumerCreds.app_tid);
    const { payload } = decodeJwt(alicePassword.id_token);
    assert.equal(payload.sap_id_type, 'user');
    assert.equal(payload.azp, consumerCreds.clientid);
    assert.ok([payload.aud].flat().includes(payload.azp), 'an id token has azp in aud');
    assert.equal(payload.iss, consumerCreds.url);
    // For an id token, getIdToken() is the token itself.
    assert.equal(await ctx.getIdToken(), alicePassword.id_token);
  });

  test('the access token has aud [consumer, provider] (consumed-services) and validates at both', async () => {
    const jwt = alicePassword.access_token;
    assert.deepEqual(audOf(jwt).sort(), [consumerCreds.clientid, providerCreds.clientid].sort());
    await createSecurityContext(new IdentityService(consumerCreds), { jwt });
    const atProvider = await createSecurityContext(new IdentityService(providerCreds), { jwt });
    assert.equal(atProvider.getEmail(), alice.email);
    await assert.rejects(createSecurityContext(new IdentityService(strangerCreds), { jwt }), rejectsWith(errors.WrongAudienceError));
  });

  test('bob (no groups) gets tokens too; a wrong password → 4xx', async () => {
    const service = new IdentityService(strangerCreds, noCache);
    const res = await service.fetchPasswordToken(bob.username, bob.password);
    const ctx = await createSecurityContext(service, { jwt: res.id_token });
    assert.equal(ctx.getEmail(), bob.email);
    await assert.rejects(service.fetchPasswordToken(bob.username, `${bob.password}x`), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.ok(err.responseCode === 400 || err.responseCode === 401, err.responseText);
      return true;
    });
  });
});

let app2app; // the jwt-bearer response with resource= (set by check 12, used by 11 and 16)

describe('check 12: fetchJwtBearerToken with resource (app2app)', () => {
  before(async () => {
    app2app = await new IdentityService(consumerCreds, noCache).fetchJwtBearerToken(alicePassword.id_token, { resource: RESOURCE });
  });

  test('aud = provider, azp = consumer, ias_apis = the provided APIs', () => {
    const { payload } = decodeJwt(app2app.access_token);
    assert.deepEqual(audOf(app2app.access_token), [providerCreds.clientid]);
    assert.equal(payload.azp, consumerCreds.clientid);
    assert.deepEqual([...payload.ias_apis].sort(), ['read-orders', 'write-orders']);
    assert.equal(payload.sap_id_type, 'user');
    assert.equal(payload.email, alice.email);
  });

  test("it validates with the provider's credentials, not the consumer's", async () => {
    const ctx = await createSecurityContext(new IdentityService(providerCreds), { jwt: app2app.access_token });
    assert.deepEqual([...ctx.token.consumedApis].sort(), ['read-orders', 'write-orders']);
    assert.equal(ctx.token.azp, consumerCreds.clientid);
    await assert.rejects(createSecurityContext(new IdentityService(consumerCreds), { jwt: app2app.access_token }),
      rejectsWith(errors.WrongAudienceError));
  });

  test('by client id: urn:sap:identity:application:provider:clientid:<id>', async () => {
    const res = await new IdentityService(consumerCreds, noCache).fetchJwtBearerToken(alicePassword.id_token,
      { resource: `urn:sap:identity:application:provider:clientid:${providerCreds.clientid}` });
    assert.deepEqual(audOf(res.access_token), [providerCreds.clientid]);
  });

  test('a client that does not consume the provider → 400 invalid_target', async () => {
    const { id_token: idToken } = await new IdentityService(strangerCreds, noCache).fetchPasswordToken(alice.username, alice.password);
    await assert.rejects(new IdentityService(strangerCreds, noCache).fetchJwtBearerToken(idToken, { resource: RESOURCE }), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.responseCode, 400, err.responseText);
      assert.equal(JSON.parse(err.responseText).error, 'invalid_target');
      return true;
    });
  });

  test("an assertion whose aud lacks the client → 400 (the stranger cannot use alice's consumer token)", async () => {
    await assert.rejects(new IdentityService(strangerCreds, noCache).fetchJwtBearerToken(alicePassword.id_token), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.responseCode, 400, err.responseText);
      return true;
    });
  });

  test('a technical token is no assertion', async () => {
    const { access_token: cc } = await new IdentityService(consumerCreds, noCache).fetchClientCredentialsToken();
    await assert.rejects(new IdentityService(consumerCreds, noCache).fetchJwtBearerToken(cc), rejectsWith(errors.ResponseError));
  });
});

describe('check 11: getIdToken() on an app2app access token', () => {
  test('jwt-bearer with token_format=jwt, refresh_expiry=0, app_tid → an id_token of the provider', async () => {
    const provider = new IdentityService(providerCreds, noCache);
    const ctx = await createSecurityContext(provider, { jwt: app2app.access_token });
    const start = recorder.requests.length;
    const idToken = await ctx.getIdToken();
    const post = recorder.requests.slice(start).find((r) => r.method === 'POST');
    assert.ok(post, 'getIdToken sent no token request');
    assert.equal(post.url.pathname, '/oauth2/token');
    assert.equal(post.form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
    assert.equal(post.form.get('assertion'), app2app.access_token);
    assert.equal(post.form.get('token_format'), 'jwt');
    assert.equal(post.form.get('refresh_expiry'), '0');
    assert.equal(post.form.get('app_tid'), providerCreds.app_tid);
    assert.equal(post.form.get('client_id'), providerCreds.clientid);

    const { payload } = decodeJwt(idToken);
    assert.equal(payload.azp, providerCreds.clientid);
    assert.ok([payload.aud].flat().includes(providerCreds.clientid));
    assert.equal(payload.email, alice.email);
    assert.equal(payload.sap_id_type, 'user');
    const idCtx = await createSecurityContext(provider, { jwt: idToken });
    assert.equal(idCtx.getEmail(), alice.email);
  });

  test('refresh_expiry=0 → no refresh_token; without it there is one', async () => {
    const provider = new IdentityService(providerCreds, noCache);
    const without = await provider.fetchJwtBearerToken(app2app.access_token, { token_format: 'jwt', refresh_expiry: 0 });
    assert.equal(typeof without.id_token, 'string');
    assert.equal(without.refresh_token, undefined);
    const withRefresh = await provider.fetchJwtBearerToken(app2app.access_token);
    assert.equal(typeof withRefresh.refresh_token, 'string');
  });

  test('getIdToken() on a technical token → ConfigurationError', async () => {
    const service = new IdentityService(providerCreds, noCache);
    const { access_token: jwt } = await service.fetchClientCredentialsToken();
    const ctx = await createSecurityContext(service, { jwt });
    await assert.rejects(ctx.getIdToken(), rejectsWith(errors.ConfigurationError));
  });
});

describe('check 16: proof token (x-client_cert → x-osb_plan)', () => {
  const proofService = () => new IdentityService(providerCreds, { validation: { proofToken: { enabled: true } } });
  let consumerJwt; // two audiences: [consumer, provider]

  before(async () => {
    consumerJwt = (await new IdentityService(consumerCreds, noCache).fetchClientCredentialsToken()).access_token;
    assert.equal(audOf(consumerJwt).length, 2);
  });

  test("the consumer's certificate → ctx.servicePlans = [\"application\"]; x-client_cert is single-line PEM", async () => {
    const pem = leafPem(consumerX509);
    const start = recorder.requests.length;
    const ctx = await createSecurityContext(proofService(), { jwt: consumerJwt, clientCertificatePem: pem });
    assert.deepEqual(ctx.servicePlans, ['application']);
    const jwks = recorder.requests.slice(start).find((r) => r.url?.pathname === '/oauth2/certs');
    assert.ok(jwks, 'no JWKS request');
    assert.equal(jwks.headers['x-client_cert'], pem.replaceAll('\n', ''));
    assert.equal(jwks.headers['x-client_id'], providerCreds.clientid);
    assert.equal(jwks.headers['x-azp'], consumerCreds.clientid);
  });

  // xssec passes the x-forwarded-client-cert value on as x-client_cert
  // unchanged: from gorouter that is the bare base64 DER of the leaf
  // (identity.md §3.3, §4.1, §5.5).
  test('the certificate as forwarded by gorouter (base64 DER) works as well', async () => {
    const der = new X509Certificate(leafPem(consumerX509)).raw.toString('base64');
    const ctx = await createSecurityContext(proofService(), {
      req: { headers: { authorization: `Bearer ${consumerJwt}`, 'x-forwarded-client-cert': der } },
    });
    assert.deepEqual(ctx.servicePlans, ['application']);
  });

  test('an unknown certificate → WrongAudienceError', async () => {
    await assert.rejects(
      createSecurityContext(proofService(), { jwt: consumerJwt, clientCertificatePem: selfSignedCertificate('stranger').cert }),
      (err) => {
        assert.ok(err instanceof errors.WrongAudienceError, `got ${err.constructor.name}: ${err.message}`);
        assert.match(err.message, /online validation/);
        return true;
      });
  });

  test('no certificate → MissingClientCertificateError; single-audience tokens need none', async () => {
    await assert.rejects(createSecurityContext(proofService(), { jwt: consumerJwt }),
      rejectsWith(errors.MissingClientCertificateError));
    const ctx = await createSecurityContext(proofService(), { jwt: app2app.access_token });
    assert.equal(ctx.token.azp, consumerCreds.clientid);
  });
});

describe('refresh_token grant and /oauth2/userinfo', () => {
  const tokenRequest = (form) => request(`${consumerCreds.url}/oauth2/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${consumerCreds.clientid}:${consumerCreds.clientsecret}`).toString('base64')}`,
      accept: 'application/json',
    },
    form,
  });

  test('refresh with Basic + app_tid=: new JWTs, rotation, the old refresh token is refused', async () => {
    const { refresh_token: first } = await new IdentityService(consumerCreds, noCache).fetchPasswordToken(alice.username, alice.password);
    const res = await tokenRequest({ grant_type: 'refresh_token', refresh_token: first, app_tid: '' });
    assert.equal(res.status, 200, res.text);
    for (const k of ['access_token', 'id_token', 'refresh_token', 'expires_in']) assert.ok(res.json[k], `${k} missing`);
    assert.notEqual(res.json.refresh_token, first);
    const ctx = await createSecurityContext(new IdentityService(consumerCreds), { jwt: res.json.access_token });
    assert.equal(ctx.getEmail(), alice.email);
    const again = await tokenRequest({ grant_type: 'refresh_token', refresh_token: first, app_tid: '' });
    assert.ok(again.status === 400 || again.status === 401, `${again.status} ${again.text}`);
  });

  test('/oauth2/userinfo with the access token', async () => {
    const res = await request(`${consumerCreds.url}/oauth2/userinfo`, { headers: { authorization: `Bearer ${alicePassword.access_token}` } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.email, alice.email);
    assert.equal(res.json.given_name, alice.given_name);
    assert.equal(res.json.family_name, alice.family_name);
    assert.equal(res.json.sub, decodeJwt(alicePassword.access_token).payload.user_uuid);
    const technical = (await new IdentityService(consumerCreds, noCache).fetchClientCredentialsToken()).access_token;
    const refused = await request(`${consumerCreds.url}/oauth2/userinfo`, { headers: { authorization: `Bearer ${technical}` } });
    assert.equal(refused.status, 401, refused.text);
  });
});
