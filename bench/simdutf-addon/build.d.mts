export function simdutfAddonPath(): string;
export function simdutfSources(): { dir: string; crateVersion: string };
export function buildSimdutfAddon(opts?: { force?: boolean; quiet?: boolean }): string;
