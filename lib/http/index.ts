export { AddressCounts } from './address-counts.js';
export { HttpServer, type HttpServerEvents } from './server.js';
export { DEFAULT_HTTP_OPTIONS, HttpStats, httpOptions, type HttpServerOptions } from './options.js';
export { Request } from './request.js';
export { discardBody, PreparedResponse, StreamedResponse, textResponse, type Answer, type HeaderList } from './response.js';
export type { Handler } from './connection.js';
