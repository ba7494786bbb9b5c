/**
 * The OpenTelemetry export (src/otel.ts) against a recording Meter (the API's no-op meter with
 * its instrument factories and batch-callback registration overridden): the instruments, their
 * kinds and units, one snapshot per collection, the values observed, and unregistering.
 */
import { type BatchObservableCallback, type BatchObservableResult, type Meter, type Observable, createNoopMeter } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import type { Health, Severity } from '../src/monitor.js';
import { registerOtelMetrics } from '../src/otel.js';
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
  const meter: Meter = {
    ...noop,
    createObservableCounter: make('counter'),
    createObservableGauge: make('gauge'),
    createObservableUpDownCounter: make('updown'),
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
  return { meter, instruments, callbacks, collect };
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
      'dtesn.items.processed': 'counter {item}',
      'dtesn.items.failed': 'counter {item}',
      'dtesn.input.size': 'counter By',
      'dtesn.queue.depth': 'updown {row}',
      'dtesn.worker.utilization': 'gauge 1',
      'dtesn.batch.duration': 'gauge s',
      'dtesn.queue.wait': 'gauge s',
      'dtesn.batch.size': 'gauge {row}',
      'dtesn.health.score': 'gauge 1',
      'dtesn.alerts.active': 'gauge {alert}',
    });
    expect(callbacks).toHaveLength(1);
    expect(callbacks[0]!.observables).toHaveLength(instruments.length);

    const calls = p.calls;
    const v = await collect();
    expect(p.calls - calls).toBe(1);
    expect(v.get('dtesn.items.processed')).toBe(100);
    expect(v.get('dtesn.queue.depth')).toBe(7);
    expect(v.get('dtesn.batch.efficiency')).toBe(0.5);
    expect(v.get('dtesn.batches{route=inline}')).toBe(4);
    expect(v.get('dtesn.batch.closes{reason=full}')).toBe(4);
    expect(v.get('dtesn.submit.duration{quantile=0.99}')).toBeCloseTo(0.04, 12);
    expect(v.get('dtesn.submit.duration{quantile=1}')).toBeCloseTo(0.04, 12);
    expect(v.get('dtesn.health.score')).toBe(91.5);
    expect(v.get('dtesn.alerts.active{severity=warning}')).toBe(2);
    expect(v.get('dtesn.alerts.active{severity=critical}')).toBe(1);

    unregister();
    expect(callbacks).toHaveLength(0);
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
    expect(v.get('dtesn.items.processed')).toBe(0);
  });

  it('refuses what is not a pipeline or a meter', () => {
    expect(() => registerOtelMetrics({} as never, createNoopMeter())).toThrow(TypeError);
    expect(() => registerOtelMetrics(new FakePipeline(), {} as never)).toThrow(new TypeError('meter must be an OpenTelemetry Meter, got Object'));
  });
});
