/* Live updates of the job control panel of plone.app.asyncjobs.
 *
 * A page root with data-asyncjobs-live (the URL of @@asyncjobs-live) and
 * data-asyncjobs-labels (translated words, JSON) holds elements with
 * data-job-id and data-job-status (the root itself may be one).  Every
 * two seconds, while the page is visible, the facts of the unfinished
 * ones are fetched and their status badge (label and class as the live
 * view gives them), progress bar, start and end times and result are
 * updated in place.  Polling pauses while
 * document.hidden, and stops once every job on the page has finished or
 * a request fails (say, the session ended); the root's
 * data-asyncjobs-polling says "on" or "off".
 */
(() => {
  "use strict";

  const INTERVAL = 2000;
  const MAX_IDS = 100;
  // The fields of a job element that belong to it, not to a job inside it.
  const ownFields = (element, name) =>
    [...element.querySelectorAll(`[data-job-field="${name}"]`)].filter(
      (field) => field.closest("[data-job-id]") === element,
    );

  // As PanelView.format_time: the times are ISO 8601 in UTC.
  const formatTime = (iso) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` : "");

  function renderProgress(container, progress, labels) {
    container.replaceChildren();
    if (!progress) {
      return;
    }
    const outer = document.createElement("div");
    outer.className = "progress";
    outer.setAttribute("role", "progressbar");
    outer.setAttribute("aria-label", labels.progress);
    const bar = document.createElement("div");
    bar.className = "progress-bar";
    if (progress.fraction === null) {
      const text = labels.done.replace("${done}", String(progress.done));
      outer.setAttribute("aria-valuetext", text);
      bar.classList.add("progress-bar-striped", "progress-bar-animated", "w-100");
      bar.textContent = text;
    } else {
      const percent = Math.round(progress.fraction * 100);
      outer.setAttribute("aria-valuemin", "0");
      outer.setAttribute("aria-valuemax", "100");
      outer.setAttribute("aria-valuenow", String(percent));
      bar.style.width = `${percent}%`;
      bar.textContent = `${percent}%`;
    }
    outer.append(bar);
    container.append(outer);
    if (progress.message) {
      const message = document.createElement("small");
      message.className = "text-body-secondary";
      message.dataset.jobField = "progress-message";
      message.textContent = progress.message;
      container.append(message);
    }
  }

  function update(element, job, labels) {
    element.dataset.jobStatus = job.status;
    element.dataset.jobState = job.state;
    // The live view sends the badge as the page shows it (PanelView.badge).
    for (const badge of ownFields(element, "status")) {
      badge.className = job.badge.class;
      badge.textContent = job.badge.label;
    }
    for (const container of ownFields(element, "progress")) {
      renderProgress(container, job.progress, labels);
    }
    for (const note of ownFields(element, "no-progress")) {
      note.hidden = job.progress !== null;
    }
    for (const name of ["started", "ended"]) {
      for (const time of ownFields(element, name)) {
        time.setAttribute("datetime", job[name] || "");
        time.textContent = formatTime(job[name]);
      }
    }
    if (job.result !== null) {
      for (const result of ownFields(element, "result")) {
        result.textContent = job.result;
      }
    }
    if (job.status === "completed") {
      for (const notice of ownFields(element, "finished-notice")) {
        notice.hidden = false;
      }
    }
  }

  function follow(root) {
    const url = root.dataset.asyncjobsLive;
    const labels = JSON.parse(root.dataset.asyncjobsLabels);
    let timer = null;
    let busy = false;
    let failed = false;

    const jobElements = () =>
      [root, ...root.querySelectorAll("[data-job-id]")].filter((element) =>
        element.matches("[data-job-id]"),
      );
    const unfinished = () =>
      jobElements().filter(
        (element) => element.dataset.jobStatus !== "completed" && !element.dataset.jobMissing,
      );
    const setPolling = (on) => {
      root.dataset.asyncjobsPolling = on ? "on" : "off";
    };

    function schedule() {
      clearTimeout(timer);
      timer = null;
      const on = !failed && !document.hidden && unfinished().length > 0;
      setPolling(on);
      if (on) {
        timer = setTimeout(poll, INTERVAL);
      }
    }

    async function poll() {
      timer = null;
      const ids = [...new Set(unfinished().map((element) => element.dataset.jobId))];
      if (failed || document.hidden || !ids.length) {
        schedule();
        return;
      }
      busy = true;
      try {
        // The live view's URL may have a query already (scope=database).
        const target = new URL(url, document.baseURI);
        target.searchParams.set("ids", ids.slice(0, MAX_IDS).join(","));
        const response = await fetch(target, {
          credentials: "same-origin",
          cache: "no-store",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) {
          throw new Error(`${url} answered ${response.status}`);
        }
        const answer = await response.json();
        const elements = jobElements();
        for (const job of answer.jobs) {
          for (const element of elements.filter((e) => e.dataset.jobId === job.id)) {
            update(element, job, labels);
          }
        }
        for (const id of answer.missing) {
          for (const element of elements.filter((e) => e.dataset.jobId === id)) {
            element.dataset.jobMissing = "true";
          }
        }
      } catch (error) {
        failed = true;
        console.warn("plone.app.asyncjobs: live updates stopped:", error);
      } finally {
        busy = false;
      }
      schedule();
    }

    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
        setPolling(false);
      } else if (!busy && timer === null) {
        poll();
      }
    });
    schedule();
  }

  for (const root of document.querySelectorAll("[data-asyncjobs-live]")) {
    follow(root);
  }
})();
