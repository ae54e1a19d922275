// Documentation generated from the code (the configuration reference, the policy's table)
// lives in Markdown between two markers; these replace what is between them. A test for
// each keeps the committed docs equal to what the code generates.

export function withGenerated(markdown: string, begin: string, end: string, block: string): string {
  const start = markdown.indexOf(begin);
  const stop = markdown.indexOf(end);
  if (start < 0 || stop < start) throw new Error(`the markers ${begin} ... ${end} are missing`);
  return markdown.slice(0, start) + block + markdown.slice(stop + end.length);
}
