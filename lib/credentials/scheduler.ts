// RefreshScheduler: one timing structure for every credential entry. A binary min-heap
// ordered by due time, and a single timer armed for the earliest item, instead of a
// timer or a pending promise per pod.

export interface Scheduled {
  /** ms timestamp at which the item is due; owned by the scheduler. */
  dueAt: number;
  /** Position in the heap, -1 when not scheduled; owned by the scheduler. */
  heapIndex: number;
}

export class RefreshScheduler<T extends Scheduled> {
  private readonly heap: T[] = [];
  private readonly onDue: (item: T, now: number) => void;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private closed = false;
  private firing = false;

  constructor(onDue: (item: T, now: number) => void) {
    this.onDue = onDue;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules the item at `at`, or moves it there if it is already scheduled. */
  schedule(item: T, at: number): void {
    if (this.closed) return;
    item.dueAt = at;
    if (item.heapIndex === -1) {
      item.heapIndex = this.heap.length;
      this.heap.push(item);
      this.up(item.heapIndex);
    } else {
      this.up(item.heapIndex);
      this.down(item.heapIndex);
    }
    this.arm();
  }

  cancel(item: T): void {
    const i = item.heapIndex;
    if (i === -1) return;
    const last = this.heap.pop() as T;
    item.heapIndex = -1;
    if (i < this.heap.length) {
      this.heap[i] = last;
      last.heapIndex = i;
      this.up(i);
      this.down(i);
    }
    this.arm();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const item of this.heap) item.heapIndex = -1;
    this.heap.length = 0;
  }

  private arm(): void {
    if (this.firing) return; // fire() arms once when it is done
    const next = this.heap[0]?.dueAt ?? Infinity;
    if (next === this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (next === Infinity) return;
    this.timer = setTimeout(this.fire, Math.max(0, next - Date.now()));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    const now = Date.now();
    this.firing = true;
    try {
      // Each due item is taken off first, so onDue may schedule it again.
      while (this.heap.length > 0 && (this.heap[0] as T).dueAt <= now) {
        const item = this.heap[0] as T;
        this.cancel(item);
        this.onDue(item, now);
      }
    } finally {
      this.firing = false;
    }
    this.arm();
  };

  private up(i: number): void {
    const heap = this.heap;
    const item = heap[i] as T;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as T;
      if (p.dueAt <= item.dueAt) break;
      heap[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    heap[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[i] as T;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && (heap[right] as T).dueAt < (heap[left] as T).dueAt ? right : left;
      const c = heap[child] as T;
      if (c.dueAt >= item.dueAt) break;
      heap[i] = c;
      c.heapIndex = i;
      i = child;
    }
    heap[i] = item;
    item.heapIndex = i;
  }
}
