/** Open connections per client address, bounded. */
export class IpCounter {
  private readonly counts = new Map<string, number>()

  constructor (private readonly max: number) {}

  /** Counts one more connection from `ip`; false (and nothing counted) when it is at the limit. */
  acquire (ip: string): boolean {
    const count = this.counts.get(ip) ?? 0
    if (count >= this.max) return false
    this.counts.set(ip, count + 1)
    return true
  }

  release (ip: string): void {
    const count = (this.counts.get(ip) ?? 0) - 1
    if (count <= 0) this.counts.delete(ip)
    else this.counts.set(ip, count)
  }

  count (ip: string): number {
    return this.counts.get(ip) ?? 0
  }
}
