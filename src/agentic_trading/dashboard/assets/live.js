// Wakes the live view when an experiment starts, without polling: the server holds one
// request open (server-sent events) and answers "live" as soon as an experiment is pending or
// running. While experiments are live the page refreshes itself every second (dcc.Interval
// "live-tick") and stops when none is left.
(function () {
  if (!window.EventSource) {
    return;
  }
  var source = new EventSource("/_agentic/live-events");
  source.addEventListener("live", function () {
    try {
      window.dash_clientside.set_props("live-tick", {disabled: false});
    } catch (e) {
      // Not on the live page (no "live-tick"), or the app is still loading.
    }
  });
})();
