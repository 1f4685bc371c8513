// tls-keepalive.js: routing over TLS keep-alive connections (the harness's
// "tls-keepalive" scenario). The certificate is not verified, so the
// self-signed one of a test setup works.
//
//   k6 run -e TARGET=https://127.0.0.1:8443 bench/k6/tls-keepalive.js
import { get, options as opts } from './lib.js';

const base = __ENV.TARGET || 'https://127.0.0.1:8443';

export const options = opts(50, { insecureSkipTLSVerify: true });

export default function () {
  get(base, true);
}
