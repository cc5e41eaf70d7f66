/** A disposable resource, shaped like VS Code's so adapters can push it into `context.subscriptions`. */
export interface Disposable {
  dispose(): void;
}

/** A subscribable event, shaped like `vscode.Event<T>`. */
export type Event<T> = (listener: (e: T) => void, thisArg?: unknown, disposables?: Disposable[]) => Disposable;

/** A minimal VS Code-style emitter for core change notifications; listeners that throw never break the emitter. */
export class Emitter<T> implements Disposable {
  private listeners = new Set<(e: T) => void>();
  private disposed = false;

  readonly event: Event<T> = (listener, thisArg, disposables) => {
    const bound = thisArg ? listener.bind(thisArg) : listener;
    if (!this.disposed) this.listeners.add(bound);
    const sub = { dispose: () => void this.listeners.delete(bound) };
    disposables?.push(sub);
    return sub;
  };

  fire(e: T): void {
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // A failing listener (the status bar, a dashboard) must not break accounting or other listeners.
      }
    }
  }

  get hasListeners(): boolean {
    return this.listeners.size > 0;
  }

  dispose(): void {
    this.disposed = true;
    this.listeners.clear();
  }
}
