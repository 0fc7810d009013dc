// One pass at a time, and requests coalesced: a request while a pass is queued joins that pass,
// a request while one runs queues exactly one more. Reconcilers and publishers that compare
// "wanted" with "stored" need nothing finer (one later pass sees every change).

export interface CoalescedOptions {
  /** The pass; its errors go to onError. */
  pass: () => Promise<void>;
  /** False: a queued pass does nothing (the owner stopped). */
  active: () => boolean;
  onError: (err: unknown) => void;
}

export class CoalescedRunner {
  private loop: Promise<void> = Promise.resolve();
  private pending = false;

  constructor(private readonly o: CoalescedOptions) {}

  /** Asks for a pass; resolves when the pass that covers this request has run. */
  request(): Promise<void> {
    if (this.pending) return this.loop;
    this.pending = true;
    this.loop = this.loop.then(async () => {
      this.pending = false;
      if (!this.o.active()) return;
      try {
        await this.o.pass();
      } catch (err) {
        this.o.onError(err);
      }
    });
    return this.loop;
  }

  /** Resolves when the passes asked for so far have run. */
  settled(): Promise<void> {
    return this.loop;
  }
}
