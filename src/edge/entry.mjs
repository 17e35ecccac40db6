// The Worker's entry module (wrangler.toml `main`): edgeauth's `fetch` and `scheduled` exports as a
// plain handler object, calling into the build that worker-build makes (build/index.js).
//
// Why not worker-build's own entry (build/worker/shim.mjs): it exports a WorkerEntrypoint class
// behind a Proxy, so every request constructs an instance, wraps it in a new Proxy (spreading a
// dozen trap functions into a fresh handler object) and wraps `fetch` in another Proxy. Measured
// on /health under `wrangler dev`, alternating 1,000-request rounds: 0.04-0.07 ms of workerd CPU
// per request more than this module (README, "Performance").
//
// What that entry also does, and this one keeps: after a wasm trap (a panic, with panic = "abort"),
// the instance may be left inconsistent, so the next request must start from a fresh one.
// worker-build's module marks the trap in `globalThis.__worker_init_state` (its global `error`
// listener catches traps in promise tasks; this module catches synchronous ones) and resets the
// instance when its entrypoint class is constructed; constructing it here, once, after a trap,
// triggers exactly that reset.
import WasmEntrypoint from '../../build/index.js';

const initState = globalThis.__worker_init_state;
const { fetch: fetchExport, scheduled: scheduledExport } = WasmEntrypoint.prototype;

function call(handler, event, env, ctx) {
  if (initState.criticalError) new WasmEntrypoint(ctx, env);
  try {
    // The exports read `this.env` and `this.ctx`, as on an entrypoint instance.
    return handler.call({ env, ctx }, event);
  } catch (error) {
    if (error instanceof WebAssembly.RuntimeError) initState.criticalError = true;
    throw error;
  }
}

export default {
  fetch(request, env, ctx) {
    return call(fetchExport, request, env, ctx);
  },
  scheduled(controller, env, ctx) {
    return call(scheduledExport, controller, env, ctx);
  },
};
