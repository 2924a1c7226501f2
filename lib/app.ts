// The composition root: builds every part from the config and wires them together.

import type { Config } from './config.js';
import { HttpServer } from './http/index.js';
import { createRouter } from './imds/router.js';
import type { Logger } from './log.js';

export interface App {
  port: number;
  close(): Promise<void>;
}

export async function startApp(config: Config, log: Logger, host?: string): Promise<App> {
  const server = new HttpServer(createRouter(), {}, {
    onHandlerError: (error, request) => log.error({ err: error, path: request.path }, 'handler failed'),
  });
  const address = await server.listen(config.appPort, host);
  log.info({ port: address.port }, 'listening');
  return {
    port: address.port,
    close: () => server.close(),
  };
}
