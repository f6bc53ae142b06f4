/** Text output: aligned tables and short relative times; --json prints the API's own JSON instead. */

export function table(rows: Array<Record<string, string>>, columns: string[]): string {
  if (rows.length === 0) return "";
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => r[c] ?? "")))].join("\n");
}

/** "3s ago", "5m ago", "2h ago", "4d ago"; "-" when there is no time. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "-";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/**
 * A command's answer, the one shape for all of them: with --json the API's JSON (`value`), else the
 * text `text()` gives (nothing printed when it gives nothing, e.g. after a note that the list is empty).
 */
export function print(ctx: { json: boolean; out(line: string): void }, value: unknown, text: () => string | undefined | void): void {
  if (ctx.json) return ctx.out(json(value));
  const t = text();
  if (t) ctx.out(t);
}
