// lib.js: what the k6 scenarios share. Every request is a GET on host
// example.com that alternates between the /app/ and /auth/ routes, with a
// bearer token when __ENV.TOKEN is set (mint one with `edge token`, see
// bench/README.md).
//
// Environment (k6 run -e NAME=value, or exported):
//   TARGET    base URL of the proxy (default per script: http://127.0.0.1:8080
//             or https://127.0.0.1:8443)
//   TOKEN     JWT for "Authorization: Bearer"; required by gateway.js
//   HOST      Host header (default example.com)
//   PATHS     comma-separated paths (default /app/dashboard,/auth/userinfo)
//   VUS       virtual users, i.e. concurrent connections (default 64)
//   DURATION  how long to run (default 30s)
//   P99_MS    the p99 latency threshold in ms (default per script)
//   EXPECT_BODY  a string every response body must contain (default: none)

import http from 'k6/http';
import { check, fail } from 'k6';

export const host = __ENV.HOST || 'example.com';
export const paths = (__ENV.PATHS || '/app/dashboard,/auth/userinfo')
  .split(',').map((p) => p.trim()).filter((p) => p !== '');
export const token = __ENV.TOKEN || '';
export const expectBody = __ENV.EXPECT_BODY || '';

// options builds a scenario's options: constant VUs for DURATION, and
// thresholds that fail the run (k6 exits 99) when more than 0.1% of requests
// fail, when checks fail, or when p99 latency is above p99ms.
export function options(p99ms, extra) {
  const o = {
    scenarios: {
      load: {
        executor: 'constant-vus',
        vus: parseInt(__ENV.VUS || '64', 10),
        duration: __ENV.DURATION || '30s',
      },
    },
    thresholds: {
      http_req_failed: ['rate<0.001'],
      checks: ['rate>0.999'],
      http_req_duration: [`p(99)<${parseFloat(__ENV.P99_MS || String(p99ms))}`],
    },
    summaryTrendStats: ['avg', 'med', 'p(90)', 'p(99)', 'max'],
  };
  return Object.assign(o, extra || {});
}

// headers are the request headers, with the token when there is one.
export function headers(withToken) {
  const h = { Host: host };
  if (withToken && token !== '') {
    h.Authorization = `Bearer ${token}`;
  }
  return h;
}

// get sends one request on the next path of the rotation and checks that a
// pod of that route answered.
export function get(base, withToken) {
  const path = paths[(__ITER + __VU) % paths.length];
  const res = http.get(`${base}${path}`, { headers: headers(withToken), tags: { route: routeOf(path) } });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'body has EXPECT_BODY': (r) => expectBody === '' || (r.body !== null && r.body.indexOf(expectBody) >= 0),
  });
  return res;
}

// routeOf is the first path segment ("app" for /app/dashboard), a tag that
// splits k6's metrics by route.
function routeOf(path) {
  return path.split('/')[1] || '';
}

// requireToken stops a run that needs a token and has none.
export function requireToken() {
  if (token === '') {
    fail('TOKEN is empty: mint one with `edge token` and pass -e TOKEN=... (see bench/README.md)');
  }
}
