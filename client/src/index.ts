export { Client, type ClientOptions, type RequestOptions, type Upload } from "./client.js";
export { ApiError, apiError } from "./errors.js";
export { browserWebSocket, EventStream, queryTokenWebSocket, EventStreamClosed, type WebSocketFactory, type WebSocketLike } from "./events.js";
export { ndjsonLines } from "./ndjson.js";
