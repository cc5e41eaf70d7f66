// The HTTP client the gateway forwards with: undici's Agent and its request API, loaded without the rest of undici.
// undici's index also loads fetch, WebSocket, EventSource, its caches and mocks at start (about 3 MB of heap and
// 0.7 MB of bundled source that the gateway never runs); the request API is what its index attaches to Dispatcher.
import Agent from 'undici/lib/dispatcher/agent';
import Dispatcher from 'undici/lib/dispatcher/dispatcher';
import api from 'undici/lib/api';
import errors from 'undici/lib/core/errors';

if (!('request' in Dispatcher.prototype)) Object.assign(Dispatcher.prototype, api);

export { Agent, errors };
