export function nodeIncludeDir(): string;
export function buildAddon(opts: {
  out: string;
  sources: string[];
  inputs?: string[];
  args?: string[];
  label: string;
  force?: boolean;
  quiet?: boolean;
}): string;
