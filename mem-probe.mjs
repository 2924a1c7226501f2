const what = process.argv[2];
if (what !== 'none') for (const m of what.split(',')) await import(m);
globalThis.gc?.(); await new Promise(r=>setTimeout(r,500)); globalThis.gc?.();
const h = process.memoryUsage();
const f = (x)=>(x/1048576).toFixed(1);
console.log(what.padEnd(40), 'rss', f(h.rss), 'heapTotal', f(h.heapTotal), 'heapUsed', f(h.heapUsed), 'ext', f(h.external), 'ab', f(h.arrayBuffers));
