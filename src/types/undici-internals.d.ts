// The parts of undici the gateway loads directly (see src/core/gateway/http-client.ts), typed by undici's own types.
declare module 'undici/lib/dispatcher/agent' {
  import { Agent } from 'undici';
  export = Agent;
}
declare module 'undici/lib/dispatcher/dispatcher' {
  import { Dispatcher } from 'undici';
  export = Dispatcher;
}
declare module 'undici/lib/api' {
  const api: Record<string, unknown>;
  export = api;
}
declare module 'undici/lib/core/errors' {
  import { errors } from 'undici';
  export = errors;
}
