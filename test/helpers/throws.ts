/** The `code` of the error `fn` throws (undefined when it throws none, or one without a code). */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}
