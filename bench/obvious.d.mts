// Types of bench/obvious.mjs.
import type { Server } from 'node:http';
import type { Dtype, VectorBatch, VectorizeOptions } from '../src/vectorize/types.js';

type Vectorize = (texts: readonly string[], options?: VectorizeOptions<Dtype>) => VectorBatch<Dtype>;
type Handler = (batch: { rows: number }) => Promise<unknown[]>;

export function spin(ms: number): void;
export function blockingHandler(batch: { rows: number }): Promise<number[]>;
export function greedyBatcher(vectorize: Vectorize, options: VectorizeOptions<Dtype>, handler?: Handler, maxRows?: number): (text: string) => Promise<unknown>;
export function plainServer(vectorize: Vectorize, handler: Handler | undefined, greedy: boolean): Server;
