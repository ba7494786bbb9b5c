export function floorAddonPath(): string;
export function buildFloorAddon(opts?: { force?: boolean; quiet?: boolean }): string;
