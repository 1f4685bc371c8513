// routing.js: plain HTTP/1.1 keep-alive routing, /app/ and /auth/ of
// example.com (the harness's "plain" scenario).
//
//   k6 run -e TARGET=http://127.0.0.1:8080 bench/k6/routing.js
//
// A TOKEN is sent when given, so the same script also loads routes that
// need one.
import { get, options as opts } from './lib.js';

const base = __ENV.TARGET || 'http://127.0.0.1:8080';

export const options = opts(50);

export default function () {
  get(base, true);
}
