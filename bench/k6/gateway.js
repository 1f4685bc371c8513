// gateway.js: every request carries a JWT that the proxy verifies, and goes
// through a rate limit, before routing (the harness's "gateway" scenario).
//
//   TOKEN=$(bin/edge token -alg HS256 -key hs256.key -sub alice -aud example.com \
//           -iss https://auth.example.com -scope app:read)
//   k6 run -e TOKEN=$TOKEN -e TARGET=http://127.0.0.1:8080 bench/k6/gateway.js
//
// setup() first checks that the proxy really enforces the token: a request
// without one and one with a damaged signature must both get 401.
import http from 'k6/http';
import { fail } from 'k6';
import { get, headers, options as opts, paths, requireToken, token } from './lib.js';

const base = __ENV.TARGET || 'http://127.0.0.1:8080';

export const options = opts(50);

export function setup() {
  requireToken();
  const url = `${base}${paths[0]}`;
  // These two are meant to fail; they do not count in http_req_failed.
  const expect401 = http.expectedStatuses(401);
  const none = http.get(url, { headers: headers(false), responseCallback: expect401 });
  if (none.status !== 401) {
    fail(`a request without a token got ${none.status}, want 401: is the route behind a JWT policy?`);
  }
  const h = headers(false);
  h.Authorization = `Bearer ${token.slice(0, -2)}${token.endsWith('xx') ? 'yy' : 'xx'}`;
  const bad = http.get(url, { headers: h, responseCallback: expect401 });
  if (bad.status !== 401) {
    fail(`a token with a damaged signature got ${bad.status}, want 401`);
  }
}

export default function () {
  get(base, true);
}
