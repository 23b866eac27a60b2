// The event loop's turns while some async work runs, measured as the gaps between ticks of a 1 ms
// interval. Plain JS so that both the tests and the child processes they start can load it.

/**
 * The gaps between ticks of a 1 ms interval while `work` runs, in ms, the last one up to its end.
 * @param {() => Promise<unknown>} work
 * @returns {Promise<number[]>}
 */
async function loopGaps(work) {
  let last = performance.now();
  const gaps = [];
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  gaps.push(performance.now() - last);
  return gaps;
}

module.exports = { loopGaps };
