// identity.md §8.2 checks 6–9, 13, 17 and 18: client credentials with
// IdentityService (secret and X509_GENERATED over xssec's own mTLS agent),
// the JWKS online validation (x-client_id, x-app_tid, x-azp), x5t,
// plain https with the certificate, tokens refused before any network call,
// discovery, and the token endpoint's tolerance for approuter's requests.
// What xssec sends is observed in this process (harness recordRequests);
// the broker's answers are checked through the behaviour they drive.

import assert from 'node:assert/strict';
import { X509Certificate, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  IdentityService, IdentityServiceSecurityContext, createSecurityContext, errors,
} from '@sap/xssec';

import {
  decodeJwt, newWorkspace, recordRequests, request, selfSignedCertificate, tamperJwt,
} from './harness.mjs';

const ws = newWorkspace();
const X509 = {
  'credential-type': 'X509_GENERATED', 'key-length': 2048, validity: 1, 'validity-type': 'DAYS', 'app-identifier': 'srv',
};
// Every fetch must reach the broker.
const noCache = { tokenfetch: { cache: { enabled: false } } };

let secretCreds;   // ias-app, SECRET
let x509Creds;     // ias-app, X509_GENERATED
let otherCreds;    // ias-other, SECRET (a client that has nothing to do with ias-app)
let consumerCreds; // ias-consumer, SECRET; consumes ias-app
let secretJwt;     // a client credentials token of ias-app (secret)
let x509Jwt;       // a client credentials token of ias-app (certificate)
let recorder;

function leafPem(creds) {
  return creds.certificate.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)[0];
}

/** base64url(SHA-256(DER)) of a certificate: the cnf x5t#S256 value. */
function x5t(pem) {
  return Buffer.from(new X509Certificate(pem).fingerprint256.replaceAll(':', ''), 'hex').toString('base64url');
}

function rejectsWith(type) {
  return (err) => {
    assert.ok(err instanceof type, `expected ${type.name}, got ${err.constructor.name}: ${err.message}`);
    return true;
  };
}

/** The requests recorded while fn runs. */
async function recording(fn) {
  const start = recorder.requests.length;
  let result;
  let error;
  try {
    result = await fn();
  } catch (err) {
    error = err;
  }
  return { result, error, requests: recorder.requests.slice(start) };
}

before(async () => {
  recorder = recordRequests();
  const app = await ws.provision({}, { name: 'ias-app', offering: 'identity' });
  ({ credentials: secretCreds } = await ws.bind(app.id));
  ({ credentials: x509Creds } = await ws.bind(app.id, X509));
  const other = await ws.provision({}, { name: 'ias-other', offering: 'identity' });
  ({ credentials: otherCreds } = await ws.bind(other.id));
  const consumer = await ws.provision({ 'consumed-services': [{ 'service-instance-name': 'ias-app' }] },
    { name: 'ias-consumer', offering: 'identity' });
  ({ credentials: consumerCreds } = await ws.bind(consumer.id));
  secretJwt = (await new IdentityService(secretCreds, noCache).fetchClientCredentialsToken()).access_token;
  x509Jwt = (await new IdentityService(x509Creds, noCache).fetchClientCredentialsToken()).access_token;
});

after(() => recorder.restore());

describe('check 6: fetchClientCredentialsToken with SECRET credentials', () => {
  test('the form carries client_secret and app_tid; the context validates', async () => {
    const service = new IdentityService(secretCreds, noCache);
    const { result, requests } = await recording(() => service.fetchClientCredentialsToken());
    const post = requests.find((r) => r.method === 'POST');
    assert.ok(post, 'no token request recorded');
    assert.equal(post.url.href, `${secretCreds.url}/oauth2/token`);
    assert.equal(post.form.get('grant_type'), 'client_credentials');
    assert.equal(post.form.get('client_id'), secretCreds.clientid);
    assert.equal(post.form.get('client_secret'), secretCreds.clientsecret);
    assert.equal(post.form.get('app_tid'), secretCreds.app_tid);
    assert.equal(result.token_type.toLowerCase(), 'bearer');
    assert.ok(result.expires_in > 0);

    const ctx = await createSecurityContext(service, { jwt: result.access_token });
    assert.ok(ctx instanceof IdentityServiceSecurityContext, `got ${ctx.constructor.name}`);
    assert.equal(ctx.token.appTid, secretCreds.app_tid);
    assert.equal(ctx.token.clientId, secretCreds.clientid);
  });

  test('claims of a client credentials token (§3.5)', () => {
    const { header, payload } = decodeJwt(secretJwt);
    assert.equal(header.alg, 'RS256');
    assert.equal(typeof header.kid, 'string');
    assert.equal(payload.iss, secretCreds.url);
    assert.equal(payload.sub, secretCreds.clientid);
    assert.equal(payload.azp, secretCreds.clientid);
    assert.deepEqual([payload.aud].flat(), [secretCreds.clientid]);
    assert.equal(payload.app_tid, secretCreds.app_tid);
    assert.equal(payload.sap_id_type, 'app');
    assert.equal(typeof payload.exp, 'number');
    assert.equal(payload.cnf, undefined, 'a secret-authenticated token must not be certificate-bound');
  });

  test('a wrong secret → 401 invalid_client', async () => {
    const service = new IdentityService({ ...secretCreds, clientsecret: `${secretCreds.clientsecret}x` }, noCache);
    await assert.rejects(service.fetchClientCredentialsToken(), (err) => {
      assert.ok(err instanceof errors.ResponseError, `got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.responseCode, 401);
      assert.equal(JSON.parse(err.responseText).error, 'invalid_client');
      return true;
    });
  });
});

describe('check 7: JWKS online validation', () => {
  test('xssec sends x-client_id, x-app_tid and x-azp to jwks_uri', async () => {
    const { error, requests } = await recording(() => createSecurityContext(new IdentityService(secretCreds), { jwt: secretJwt }));
    assert.equal(error, undefined, error?.stack);
    const jwks = requests.find((r) => r.url?.pathname === '/oauth2/certs');
    assert.ok(jwks, `no JWKS request among ${requests.map((r) => r.url?.href)}`);
    assert.equal(jwks.headers['x-client_id'], secretCreds.clientid);
    assert.equal(jwks.headers['x-app_tid'], secretCreds.app_tid);
    assert.equal(jwks.headers['x-azp'], secretCreds.clientid);
  });

  // The tampered tokens below fail the signature check too, but the JWKS is
  // fetched first: the error says which check refused them.
  const onlineValidation = /online validation/;

  test('a token whose azp is a foreign client → WrongAudienceError from the JWKS 400', async () => {
    const jwt = tamperJwt(secretJwt, { payload: (p) => ({ ...p, azp: otherCreds.clientid }) });
    await assert.rejects(createSecurityContext(new IdentityService(secretCreds), { jwt }), (err) => {
      assert.ok(err instanceof errors.WrongAudienceError, `got ${err.constructor.name}: ${err.message}`);
      assert.match(err.message, onlineValidation);
      return true;
    });
  });

  test('a token of an unknown app_tid → WrongAudienceError from the JWKS 400', async () => {
    const jwt = tamperJwt(secretJwt, { payload: (p) => ({ ...p, app_tid: randomUUID() }) });
    await assert.rejects(createSecurityContext(new IdentityService(secretCreds), { jwt }), (err) => {
      assert.ok(err instanceof errors.WrongAudienceError, `got ${err.constructor.name}: ${err.message}`);
      assert.match(err.message, onlineValidation);
      return true;
    });
  });

  test('a token of an unknown azp_app_tid → WrongAudienceError from the JWKS 400', async () => {
    const jwt = tamperJwt(secretJwt, { payload: (p) => ({ ...p, azp_app_tid: randomUUID() }) });
    const { error, requests } = await recording(() => createSecurityContext(new IdentityService(secretCreds), { jwt }));
    assert.ok(error instanceof errors.WrongAudienceError, `got ${error?.constructor.name}: ${error?.message}`);
    assert.match(error.message, onlineValidation);
    const jwks = requests.find((r) => r.url?.pathname === '/oauth2/certs');
    assert.equal(jwks?.headers['x-azp_app_tid'], decodeJwt(jwt).payload.azp_app_tid);
  });

  test('an unknown x-client_id (credentials of no client) → WrongAudienceError', async () => {
    const ghost = randomUUID();
    const jwt = tamperJwt(secretJwt, { payload: (p) => ({ ...p, aud: [ghost], azp: ghost, sub: ghost }) });
    await assert.rejects(createSecurityContext(new IdentityService({ ...secretCreds, clientid: ghost }), { jwt }), (err) => {
      assert.ok(err instanceof errors.WrongAudienceError, `got ${err.constructor.name}: ${err.message}`);
      assert.match(err.message, onlineValidation);
      return true;
    });
  });

  test("a consumer's token (aud = [consumer, provider], azp = consumer) validates at the provider", async () => {
    const { access_token: jwt } = await new IdentityService(consumerCreds, noCache).fetchClientCredentialsToken();
    const { payload } = decodeJwt(jwt);
    assert.deepEqual([...payload.aud].sort(), [consumerCreds.clientid, secretCreds.clientid].sort());
    assert.equal(payload.azp, consumerCreds.clientid);
    const ctx = await createSecurityContext(new IdentityService(secretCreds), { jwt });
    assert.equal(ctx.token.azp, consumerCreds.clientid);
    // The provider's consumer list is one way: the provider's token does not
    // reach the consumer.
    await assert.rejects(createSecurityContext(new IdentityService(consumerCreds), { jwt: secretJwt }),
      rejectsWith(errors.WrongAudienceError));
  });
});

describe('check 8: X509_GENERATED over mTLS through xssec', () => {
  test('no client_secret in the form, an mTLS agent; the token is bound to the leaf (cnf)', async () => {
    const service = new IdentityService(x509Creds, noCache);
    const { result, requests } = await recording(() => service.fetchClientCredentialsToken());
    const post = requests.find((r) => r.method === 'POST');
    assert.ok(post, 'no token request recorded');
    assert.equal(post.form.get('client_secret'), null);
    assert.equal(post.form.get('client_id'), x509Creds.clientid);
    assert.equal(post.form.get('app_tid'), x509Creds.app_tid);
    assert.ok(post.agent?.options?.cert, 'xssec did not use its client certificate agent');
    const { payload } = decodeJwt(result.access_token);
    assert.equal(payload.cnf?.['x5t#S256'], x5t(leafPem(x509Creds)));
    assert.equal(payload.azp, x509Creds.clientid);
    await createSecurityContext(service, { jwt: result.access_token });
  });

  const x5tService = () => new IdentityService(x509Creds, { validation: { x5t: { enabled: true } } });
  const forwarded = (pem) => new X509Certificate(pem).raw.toString('base64');

  test('validation.x5t with x-forwarded-client-cert = the leaf → context, isInternal()', async () => {
    const req = { headers: { authorization: `Bearer ${x509Jwt}`, 'x-forwarded-client-cert': forwarded(leafPem(x509Creds)) } };
    const ctx = await createSecurityContext(x5tService(), { req });
    assert.equal(ctx.isInternal(), true);
  });

  test('validation.x5t with another certificate → X5tError', async () => {
    const req = { headers: { authorization: `Bearer ${x509Jwt}`, 'x-forwarded-client-cert': forwarded(selfSignedCertificate('other').cert) } };
    await assert.rejects(createSecurityContext(x5tService(), { req }), rejectsWith(errors.X5tError));
  });

  test('validation.x5t with a secret-authenticated token (no cnf) → X5tError', async () => {
    const req = { headers: { authorization: `Bearer ${secretJwt}`, 'x-forwarded-client-cert': forwarded(leafPem(x509Creds)) } };
    await assert.rejects(createSecurityContext(x5tService(), { req }), rejectsWith(errors.X5tError));
  });

  test('validation.x5t without a certificate → MissingClientCertificateError', async () => {
    await assert.rejects(createSecurityContext(x5tService(), { jwt: x509Jwt }), rejectsWith(errors.MissingClientCertificateError));
  });
});

describe('check 9: plain https.request with the certificate', () => {
  test('POST token_endpoint with cert + key → 200 JSON', async () => {
    const res = await request(`${x509Creds.url}/oauth2/token`, {
      method: 'POST',
      headers: { accept: 'application/json' },
      cert: x509Creds.certificate,
      key: x509Creds.key,
      form: { grant_type: 'client_credentials', client_id: x509Creds.clientid },
    });
    assert.equal(res.status, 200, res.text);
    assert.match(res.headers['content-type'], /^application\/json/);
    assert.equal(typeof res.json.access_token, 'string');
    assert.equal(res.json.token_type.toLowerCase(), 'bearer');
    assert.equal(typeof res.json.expires_in, 'number');
    assert.equal(decodeJwt(res.json.access_token).payload.cnf?.['x5t#S256'], x5t(leafPem(x509Creds)));
  });

  test('without client_id the certificate alone identifies the client', async () => {
    const res = await request(`${x509Creds.url}/oauth2/token`, {
      method: 'POST',
      cert: x509Creds.certificate,
      key: x509Creds.key,
      form: { grant_type: 'client_credentials' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(decodeJwt(res.json.access_token).payload.azp, x509Creds.clientid);
  });

  test("the certificate with another client's client_id → 401 invalid_client", async () => {
    const res = await request(`${x509Creds.url}/oauth2/token`, {
      method: 'POST',
      cert: x509Creds.certificate,
      key: x509Creds.key,
      form: { grant_type: 'client_credentials', client_id: otherCreds.clientid },
    });
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json?.error, 'invalid_client');
  });

  test('neither secret nor certificate → 401 invalid_client', async () => {
    const res = await request(`${x509Creds.url}/oauth2/token`, {
      method: 'POST',
      form: { grant_type: 'client_credentials', client_id: x509Creds.clientid },
    });
    assert.equal(res.status, 401, res.text);
    assert.equal(res.json?.error, 'invalid_client');
  });
});

describe('check 13: refused before any network call', () => {
  const cases = [
    ['foreign issuer → UntrustedIssuerError', (p) => ({ ...p, iss: 'https://evil.example.com' }), errors.UntrustedIssuerError],
    ['issuer with a trailing slash → UntrustedIssuerError', (p) => ({ ...p, iss: `${p.iss}/` }), errors.UntrustedIssuerError],
    ['issuer without the port → UntrustedIssuerError', (p) => ({ ...p, iss: `https://${new URL(p.iss).hostname}` }), errors.UntrustedIssuerError],
    ['aud without the client → WrongAudienceError', (p) => ({ ...p, aud: [otherCreds.clientid] }), errors.WrongAudienceError],
  ];
  for (const [name, edit, type] of cases) {
    test(name, async () => {
      const jwt = tamperJwt(secretJwt, { payload: edit });
      const { error, requests } = await recording(() => createSecurityContext(new IdentityService(secretCreds), { jwt }));
      assert.ok(error, 'the token was accepted');
      rejectsWith(type)(error);
      assert.deepEqual(requests.map((r) => r.url?.href), [], 'no request may be sent for this token');
    });
  }

  test('getSafeUrlFromTokenIssuer accepts the real issuer', () => {
    const { payload } = decodeJwt(secretJwt);
    assert.equal(IdentityService.getSafeUrlFromTokenIssuer({ issuer: payload.iss }, secretCreds.domains), secretCreds.url);
  });
});

describe('check 17: discovery', () => {
  test('/.well-known/openid-configuration on the identity host', async () => {
    const res = await request(`${secretCreds.url}/.well-known/openid-configuration`);
    assert.equal(res.status, 200, res.text);
    const d = res.json;
    assert.equal(d.issuer, decodeJwt(secretJwt).payload.iss);
    assert.equal(d.issuer, secretCreds.url);
    assert.equal(d.token_endpoint, `${secretCreds.url}/oauth2/token`);
    assert.equal(d.jwks_uri, `${secretCreds.url}/oauth2/certs`);
    assert.equal(d.authorization_endpoint, secretCreds.authorization_endpoint);
    assert.equal(d.end_session_endpoint, secretCreds.end_session_endpoint);
    assert.equal(d.userinfo_endpoint, `${secretCreds.url}/oauth2/userinfo`);
    assert.ok(Array.isArray(d.grant_types_supported));
    for (const g of ['client_credentials', 'password', 'authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:jwt-bearer']) {
      assert.ok(d.grant_types_supported.includes(g), `grant_types_supported lacks ${g}`);
    }
  });

  test('the JWKS holds the key of the tokens, with n and e', async () => {
    const res = await request(`${secretCreds.url}/oauth2/certs`, { headers: { 'x-client_id': secretCreds.clientid } });
    assert.equal(res.status, 200, res.text);
    const key = res.json.keys.find((k) => k.kid === decodeJwt(secretJwt).header.kid);
    assert.ok(key, 'kid not in the JWKS');
    assert.equal(key.kty, 'RSA');
    assert.ok(key.n && key.e);
  });
});

describe('check 18: approuter-style token requests', () => {
  const basic = () => `Basic ${Buffer.from(`${secretCreds.clientid}:${secretCreds.clientsecret}`).toString('base64')}`;

  test('Basic and the body secret together, with an empty app_tid', async () => {
    const res = await request(`${secretCreds.url}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: basic(), accept: 'application/json' },
      form: {
        grant_type: 'client_credentials', client_id: secretCreds.clientid, client_secret: secretCreds.clientsecret, app_tid: '',
      },
    });
    assert.equal(res.status, 200, res.text);
    await createSecurityContext(new IdentityService(secretCreds), { jwt: res.json.access_token });
  });

  test('Basic alone', async () => {
    const res = await request(`${secretCreds.url}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: basic() },
      form: { grant_type: 'client_credentials' },
    });
    assert.equal(res.status, 200, res.text);
  });

  test('Basic and a body secret that disagree → 401', async () => {
    const res = await request(`${secretCreds.url}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: basic() },
      form: { grant_type: 'client_credentials', client_id: secretCreds.clientid, client_secret: otherCreds.clientsecret },
    });
    assert.equal(res.status, 401, res.text);
  });

  test('an app_tid that is not a tenant of the client → 400', async () => {
    const res = await request(`${secretCreds.url}/oauth2/token`, {
      method: 'POST',
      headers: { authorization: basic() },
      form: { grant_type: 'client_credentials', app_tid: randomUUID() },
    });
    assert.equal(res.status, 400, res.text);
  });

  test('an xsuaa token endpoint is not an identity one: /oauth/token refuses identity clients', async () => {
    const res = await request(`${secretCreds.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: basic() },
      form: { grant_type: 'client_credentials' },
    });
    assert.ok(res.status >= 400 && res.status < 500, `${res.status} ${res.text}`);
  });
});
