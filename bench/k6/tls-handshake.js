// tls-handshake.js: a new TLS connection, so a full handshake, for every
// request (the harness's "tls-handshake" scenario; wrk does it with
// -H 'Connection: close'). k6's http_reqs rate is then handshakes per second;
// the handshake time itself is http_req_tls_handshaking.
//
//   k6 run -e TARGET=https://127.0.0.1:8443 bench/k6/tls-handshake.js
import { get, options as opts } from './lib.js';

const base = __ENV.TARGET || 'https://127.0.0.1:8443';

export const options = opts(200, {
  insecureSkipTLSVerify: true,
  noConnectionReuse: true,
});
options.thresholds.http_req_tls_handshaking = [`p(99)<${parseFloat(__ENV.HANDSHAKE_P99_MS || '100')}`];

export default function () {
  get(base, true);
}
