import { Emitter, type Event } from '../../events';

/** Whether the database answers one part of a replica's store (budgets, rate limits): the failure while it does not, an event when it answers again. */
export class Reachability {
  /** Set while the database cannot be reached (each tick tries again until it can). */
  failure?: { code: string; message: string };
  protected readonly recoveries = new Emitter<void>();
  /** Fires when the database answers again after a failure. */
  readonly onDidRecover: Event<void> = this.recoveries.event;
  /** A probe of the database is in flight (one at a time, while `failure` is set). */
  protected probing = false;

  /** `what` names the part in the failure's message ("budgets", "rate limits"). */
  constructor(private readonly what: string) {}

  /** The database answered: clears the failure, and fires onDidRecover if there was one. */
  protected recovered(): void {
    if (!this.failure) return;
    this.failure = undefined;
    this.recoveries.fire();
  }

  /** The database did not answer (or failed): keeps the failure with its code. */
  protected fail(err: unknown): void {
    const e = err as { code?: string; message?: string };
    this.failure = { code: e.code ?? 'ESTORE', message: `the store (PostgreSQL) cannot be reached for ${this.what} (${e.code ?? e.message})` };
  }
}
