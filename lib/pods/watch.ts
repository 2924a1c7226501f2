// ResourceWatch: list, then watch from the list's resourceVersion, for as long as the
// proxy runs. The client's informer stops on errors; this loop never does:
// - 410 Gone (as an event or a status) re-lists; the new list replaces the old state;
// - any other error or a closed stream restarts the watch from the last
//   resourceVersion, after an exponential back-off that starts over once a watch has
//   delivered again (however that watch then ended), so past outages never lengthen
//   the wait after the next one;
// - a watch that stays silent longer than bookmarks allow is abandoned and restarted,
//   so a half-open connection cannot freeze the index.
// The consumer keeps serving its last known state throughout.

import { backoffDelay } from '../rate-limit.js';
import type { KubernetesApi, WatchEvent } from './kubernetes.js';

export interface WatchConsumer {
  /**
   * One page of a list, to be converted at once so the raw objects of a large list are
   * never all held together.
   */
  listPage(items: unknown[]): void;
  /** The list is complete: objects not in it are gone. */
  listEnd(): void;
  /** A list broke off; the pages taken so far are dropped. */
  listAborted(): void;
  added(item: unknown): void;
  modified(item: unknown): void;
  deleted(item: unknown): void;
}

export interface WatchOptions {
  /** Page size of lists. */
  pageSize: number;
  /** Seconds after which the server ends a watch (it is then resumed). */
  watchSeconds: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A list or watch failed: `resource` is the watched path; retried after `retryInMs`. */
  onError: (error: unknown, failure: { resource: string; restarts: number; retryInMs: number }) => void;
}

export const DEFAULT_WATCH_OPTIONS: Omit<WatchOptions, 'onError'> = {
  pageSize: 500,
  watchSeconds: 300,
  backoffBaseMs: 250,
  backoffMaxMs: 30_000,
};

class Gone extends Error {}

export class ResourceWatch {
  /** The first complete list has been applied. */
  synced = false;
  restarts = 0;
  relists = 0;
  private readonly api: KubernetesApi;
  private readonly path: string;
  private readonly fieldSelector: string | undefined;
  private readonly consumer: WatchConsumer;
  private readonly options: WatchOptions;
  private resourceVersion = '';
  private stopped = false;
  private controller: AbortController | null = null;
  private sleepTimer: NodeJS.Timeout | null = null;
  private wakeSleep: (() => void) | null = null;
  private syncWaiters: Array<() => void> = [];
  /** The current watch request has delivered an event or bookmark: the API server works. */
  private delivering = false;

  constructor(api: KubernetesApi, path: string, fieldSelector: string | undefined, consumer: WatchConsumer, options: WatchOptions) {
    this.api = api;
    this.path = path;
    this.fieldSelector = fieldSelector;
    this.consumer = consumer;
    this.options = options;
  }

  start(): void {
    void this.run();
  }

  /** Resolves once the first list has been applied. */
  whenSynced(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    if (this.sleepTimer !== null) clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      this.delivering = false;
      try {
        if (this.resourceVersion === '') await this.relist();
        const delivered = await this.watchOnce();
        if (delivered) failures = 0;
      } catch (error) {
        if (this.stopped) break;
        if (error instanceof Gone) {
          this.resourceVersion = '';
          continue;
        }
        // A watch that worked before it broke is a first failure, not one more of a series.
        if (this.delivering) failures = 0;
        failures++;
        this.restarts++;
        const delay = backoffDelay(failures, this.options.backoffBaseMs, this.options.backoffMaxMs, Math.random);
        this.options.onError(error, { resource: this.path, restarts: this.restarts, retryInMs: delay });
        await this.sleep(delay);
      }
    }
  }

  private async relist(): Promise<void> {
    let continueToken: string | undefined;
    let resourceVersion = '';
    try {
      do {
        const page = await this.api.list(this.path, { fieldSelector: this.fieldSelector, limit: this.options.pageSize, continue: continueToken });
        this.consumer.listPage(page.items);
        continueToken = page.continueToken;
        resourceVersion = page.resourceVersion;
      } while (continueToken !== undefined && !this.stopped);
    } catch (error) {
      this.consumer.listAborted();
      throw error;
    }
    if (this.stopped) return;
    this.consumer.listEnd();
    this.resourceVersion = resourceVersion;
    if (this.synced) this.relists++;
    this.synced = true;
    for (const resolve of this.syncWaiters) resolve();
    this.syncWaiters = [];
  }

  /** One watch request; resolves when it ends normally, with whether it delivered anything. */
  private async watchOnce(): Promise<boolean> {
    const controller = new AbortController();
    this.controller = controller;
    let delivered = false;
    // No event or bookmark for this long means the connection is dead.
    const silenceMs = (this.options.watchSeconds + 30) * 1000;
    const watchdog = setTimeout(() => controller.abort(new Error(`watch silent for ${silenceMs / 1000} s`)), silenceMs);
    const onEvent = ({ type, object }: WatchEvent): void => {
      watchdog.refresh();
      if (type === 'ERROR') {
        const code = (object as { code?: number } | undefined)?.code;
        throw code === 410 ? new Gone() : new Error(`watch error event: ${JSON.stringify(object)}`);
      }
      this.delivering = true;
      const version = (object as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
      if (version !== undefined) this.resourceVersion = version;
      if (type === 'BOOKMARK') return;
      delivered = true;
      if (type === 'ADDED') this.consumer.added(object);
      else if (type === 'MODIFIED') this.consumer.modified(object);
      else if (type === 'DELETED') this.consumer.deleted(object);
    };
    try {
      const query = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        fieldSelector: this.fieldSelector,
        timeoutSeconds: this.options.watchSeconds,
      };
      await this.api.watch(this.path, query, onEvent, controller.signal);
    } catch (error) {
      if (!this.stopped) throw isGone(error) ? new Gone() : error;
    } finally {
      clearTimeout(watchdog);
      this.controller = null;
    }
    return delivered;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wakeSleep = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }
}

function isGone(error: unknown): boolean {
  return error instanceof Gone || (error as { statusCode?: unknown } | null)?.statusCode === 410;
}
