/**
 * The OpenTelemetry export (src/observe/export/otel.ts) against a recording Meter (the API's no-op meter with
 * its instrument factories and batch-callback registration overridden): the instruments, their
 * names, kinds and units, one snapshot per collection, the values observed, the histograms fed
 * every value a real pipeline records, and unregistering.
 */
import { type BatchObservableCallback, type BatchObservableResult, type Meter, type Observable, createNoopMeter } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import type { Health, Severity } from '../src/observe/monitor/monitor.js';
import { registerOtelMetrics } from '../src/observe/export/otel.js';
import { createPipeline } from '../src/pipeline/pipeline.js';
import { FakePipeline } from './fixtures/fake-pipeline.js';

interface Instrument {
  kind: string;
  name: string;
  unit: string | undefined;
  observable: Observable;
}

function recordingMeter() {
  const noop = createNoopMeter();
  const instruments: Instrument[] = [];
  const callbacks: Array<{ cb: BatchObservableCallback; observables: Observable[] }> = [];
  // The no-op meter hands out one shared instrument; each of ours must be its own object.
  const make = (kind: string) => (name: string, options?: { unit?: string }) => {
    const observable: Observable = { addCallback() {}, removeCallback() {} };
    instruments.push({ kind, name, unit: options?.unit, observable });
    return observable;
  };
  /** Every value each histogram recorded, and its bucket advice. */
  const recorded = new Map<string, number[]>();
  const bounds = new Map<string, number[] | undefined>();
  const createHistogram = (name: string, options?: { unit?: string; advice?: { explicitBucketBoundaries?: number[] } }) => {
    const observable: Observable = { addCallback() {}, removeCallback() {} };
    instruments.push({ kind: 'histogram', name, unit: options?.unit, observable });
    recorded.set(name, []);
    bounds.set(name, options?.advice?.explicitBucketBoundaries);
    return { record: (v: number) => recorded.get(name)!.push(v) };
  };
  const meter: Meter = {
    ...noop,
    createObservableCounter: make('counter'),
    createObservableGauge: make('gauge'),
    createObservableUpDownCounter: make('updown'),
    createHistogram: createHistogram as unknown as Meter['createHistogram'],
    addBatchObservableCallback: (cb, observables) => void callbacks.push({ cb, observables }),
    removeBatchObservableCallback: (cb) => {
      const i = callbacks.findIndex((c) => c.cb === cb);
      if (i >= 0) callbacks.splice(i, 1);
    },
  };
  /** Runs the registered callbacks once; returns name{attrs} -> value. */
  const collect = async (): Promise<Map<string, number>> => {
    const out = new Map<string, number>();
    for (const { cb, observables } of callbacks) {
      const result: BatchObservableResult = {
        observe(o, value, attributes) {
          expect(observables).toContain(o);
          const inst = instruments.find((i) => i.observable === o)!;
          const attrs = attributes ? Object.entries(attributes).map(([k, v]) => `${k}=${String(v)}`).join(',') : '';
          out.set(attrs ? `${inst.name}{${attrs}}` : inst.name, value);
        },
      };
      await cb(result);
    }
    return out;
  };
  return { meter, instruments, callbacks, collect, recorded, bounds };
}

describe('registerOtelMetrics', () => {
  it('creates observable instruments and observes one snapshot per collection', async () => {
    const p = new FakePipeline();
    p.step(2, { rate: 50, microBatches: 4, submits: 20 });
    p.queueDepth = 7;
    p.efficiency = 0.5;
    p.p99 = 40;
    const monitor = {
      health: (): Health => ({ score: 91.5, grade: 'A', components: {} as Health['components'] }),
      activeBySeverity: (): Record<Severity, number> => ({ info: 0, warning: 2, critical: 1 }),
    };
    const { meter, instruments, callbacks, collect } = recordingMeter();
    const unregister = registerOtelMetrics(p, meter, { monitor });
    const kinds = Object.fromEntries(instruments.map((i) => [i.name, `${i.kind} ${i.unit}`]));
    expect(kinds).toMatchObject({
      'dtesn.item.processed': 'counter {item}',
      'dtesn.item.failed': 'counter {item}',
      'dtesn.item.accepted': 'counter {item}',
      'dtesn.item.shed': 'counter {item}',
      'dtesn.batch.count': 'counter {batch}',
      'dtesn.batch.close': 'counter {batch}',
      'dtesn.worker.count': 'gauge {worker}',
      'dtesn.input.size': 'counter By',
      'dtesn.queue.depth': 'updown {row}',
      'dtesn.worker.utilization': 'gauge 1',
      'dtesn.health.score': 'gauge 1',
      'dtesn.alert.active': 'gauge {alert}',
    });
    // Singular namespaces, no plural or _total (OpenTelemetry's naming rules).
    for (const i of instruments) expect(i.name, i.name).toMatch(/^dtesn(\.[a-z_]+)+$/);
    for (const i of instruments) expect(i.name).not.toMatch(/\.(items|batches|workers|alerts)\b|total/);
    // A fake pipeline has no collector to feed histograms.
    expect(instruments.some((i) => i.kind === 'histogram')).toBe(false);
    expect(callbacks).toHaveLength(1);
    expect(callbacks[0]!.observables).toHaveLength(instruments.length);

    const calls = p.calls;
    const v = await collect();
    expect(p.calls - calls).toBe(1);
    expect(v.get('dtesn.item.processed')).toBe(100);
    expect(v.get('dtesn.queue.depth')).toBe(7);
    expect(v.get('dtesn.batch.efficiency')).toBe(0.5);
    expect(v.get('dtesn.batch.count{dtesn.route=inline}')).toBe(4);
    expect(v.get('dtesn.batch.close{dtesn.reason=full}')).toBe(4);
    expect(v.get('dtesn.health.score')).toBe(91.5);
    expect(v.get('dtesn.alert.active{dtesn.severity=warning}')).toBe(2);
    expect(v.get('dtesn.alert.active{dtesn.severity=critical}')).toBe(1);

    unregister();
    expect(callbacks).toHaveLength(0);
  });

  it('a real pipeline feeds its Histogram instruments every value it records, in seconds and rows; unregistering stops them', async () => {
    const p = createPipeline({ maxWorkers: 1 });
    try {
      const { meter, instruments, collect, recorded, bounds } = recordingMeter();
      const unregister = registerOtelMetrics(p, meter);
      expect(instruments.filter((i) => i.kind === 'histogram').map((i) => `${i.name} ${i.unit}`)).toEqual([
        'dtesn.batch.duration s', 'dtesn.batch.size {row}', 'dtesn.queue.wait s', 'dtesn.submit.duration s',
      ]);
      expect(bounds.get('dtesn.batch.duration')![0]).toBe(0.0001);
      await p.vectorize(['a', 'bb', 'ccc']);
      await Promise.all(['x', 'y', 'z', 'w'].map((t) => p.submit(t))); // one micro-batch of 4
      await collect(); // a collection applies what is logged
      const m = p.metrics();
      expect(recorded.get('dtesn.batch.size')).toEqual([3, 4]);
      expect(recorded.get('dtesn.batch.duration')).toHaveLength(2);
      expect(recorded.get('dtesn.submit.duration')).toHaveLength(4);
      expect(recorded.get('dtesn.queue.wait')).toHaveLength(1);
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      expect(sum(recorded.get('dtesn.submit.duration')!)).toBeCloseTo(m.latency!.submit.sum / 1000, 9);
      expect(sum(recorded.get('dtesn.batch.duration')!)).toBeCloseTo(m.latency!.batch.sum / 1000, 9);
      unregister();
      await p.submit('after');
      p.metrics();
      expect(recorded.get('dtesn.submit.duration')).toHaveLength(4);
    } finally {
      await p.close();
    }
  });

  it('without profiling the distributions observe nothing', async () => {
    const p = new FakePipeline();
    p.profiling = false;
    const { meter, collect } = recordingMeter();
    registerOtelMetrics(p, meter);
    const v = await collect();
    expect([...v.keys()].some((k) => k.startsWith('dtesn.batch.duration'))).toBe(false);
    expect(v.has('dtesn.batch.efficiency')).toBe(false);
    expect(v.has('dtesn.health.score')).toBe(false);
    expect(v.get('dtesn.item.processed')).toBe(0);
  });

  it('refuses what is not a pipeline or a meter', () => {
    expect(() => registerOtelMetrics({} as never, createNoopMeter())).toThrow(TypeError);
    expect(() => registerOtelMetrics(new FakePipeline(), {} as never)).toThrow(new TypeError('meter must be an OpenTelemetry Meter, got Object'));
  });
});
