// How many of something each client address holds now (connections, requests waiting
// upstream), so that one pod cannot take a shared limit from every other.

export class AddressCounts {
  private readonly counts = new Map<string, number>();

  of(address: string): number {
    return this.counts.get(address) ?? 0;
  }

  add(address: string): void {
    this.counts.set(address, this.of(address) + 1);
  }

  remove(address: string): void {
    const left = this.of(address) - 1;
    if (left <= 0) this.counts.delete(address);
    else this.counts.set(address, left);
  }
}
