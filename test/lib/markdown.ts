/** Reading the commands out of the docs (docs/teams.md), for the tests that check or run them as written. */

/** The section whose `## ` heading starts with `prefix` (e.g. "2."), without its heading marker; "" when there is none. */
export function markdownSection(markdown: string, prefix: string): string {
  return markdown.split(/^## /m).find((s) => s.startsWith(prefix)) ?? "";
}

/** The lines of each ```sh block: continuation lines joined, trimmed, blank lines and comment lines dropped. */
export function shBlocks(markdown: string): string[][] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1]!
      .replace(/\\\n\s*/g, " ")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#")),
  );
}
