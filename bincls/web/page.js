/* The page around window.bincls: files dropped or chosen, the webcam, the answers. */
(function () {
  "use strict";

  const info = window.bincls.info;
  const $ = (id) => document.getElementById(id);
  const names = info.class_names;
  const pct = (p) => (100 * p).toFixed(p > 0.995 || p < 0.005 ? 1 : 0) + "%";

  document.title = `${names[0]} or ${names[1]}?`;
  $("title").textContent = `${names[0]} or ${names[1]}?`;

  function setStatus(text, state) {
    $("status").textContent = text;
    if (state) document.body.dataset.state = state;
  }

  function aboutModel() {
    const v = info.verification || {};
    const rows = [
      ["Classes", `${names[0]}, ${names[1]}`],
      ["Decision", `${names[1]} when P(${names[1]}) \u2265 ${info.threshold.toFixed(3)}, else ${names[0]}`],
      ["Unlike the training images",
        info.ood_threshold === null || info.ood_threshold === undefined
          ? "not checked (this model has no detector)"
          : `flagged when the score is above ${info.ood_threshold.toFixed(1)}`],
      ["Model", `${info.model}, ${info.input.preprocessing.img_size} px, ${info.precision}`],
    ];
    if (v.images) {
      rows.push(["Checked", `against bincls predict on ${v.images} images (${v.source}): largest ` +
        `difference in P ${Number(v.max_prob_diff).toPrecision(2)}, same label on ` +
        `${(100 * v.label_agreement).toFixed(1)}%`]);
    }
    const p = info.provenance || {};
    if (p.run_id) rows.push(["Run", p.run_id]);
    if (p.val_accuracy !== null && p.val_accuracy !== undefined) {
      rows.push(["Validation accuracy", pct(p.val_accuracy)]);
    }
    const dl = $("about");
    for (const [k, val] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = val;
      dl.append(dt, dd);
    }
  }

  // One answer, as a card (files) or as the webcam's overlay.
  function answerView(r) {
    const box = document.createElement("div");
    box.className = "answer";
    const head = document.createElement("div");
    head.className = "answer-head";
    const cls = document.createElement("strong");
    cls.className = r.ood ? "class unlike" : "class";
    // An image unlike every training image is said so first: its class is only the nearer of two.
    cls.textContent = r.ood ? "Unlike the training images" : r.class_name;
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = r.ood ? `nearer: ${r.class_name} ${pct(r.probability)}` : pct(r.probability);
    prob.title = `P(${names[1]}) = ${r.p_class1.toFixed(4)}`;
    head.append(cls, prob);
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("role", "meter");
    bar.setAttribute("aria-valuenow", r.p_class1.toFixed(3));
    bar.setAttribute("aria-label", `P(${names[1]})`);
    const fill = document.createElement("span");
    fill.style.width = pct(r.p_class1);
    const tick = document.createElement("i");
    tick.style.left = pct(info.threshold);
    bar.append(fill, tick);
    const scale = document.createElement("div");
    scale.className = "scale";
    scale.innerHTML = "<span></span><span></span>";
    scale.children[0].textContent = names[0];
    scale.children[1].textContent = names[1];
    box.append(head, bar, scale);
    if (r.ood) {
      const flag = document.createElement("p");
      flag.className = "flag";
      flag.textContent = `It looks like neither ${names[0]} nor ${names[1]}: the nearer class may mean nothing.`;
      box.append(flag);
    }
    return box;
  }

  let given = 0;
  function card(file) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.testid = "result";
    li.dataset.order = String(given++);
    li.dataset.file = file.name;
    const img = document.createElement("img");
    img.alt = file.name;
    img.src = URL.createObjectURL(file);
    img.onload = () => URL.revokeObjectURL(img.src);
    const body = document.createElement("div");
    body.className = "result-body";
    const name = document.createElement("div");
    name.className = "file";
    name.textContent = file.name;
    body.append(name);
    li.append(img, body);
    return li;
  }

  async function classifyFiles(files) {
    const list = Array.from(files).filter((f) => f.size > 0);
    if (!list.length) return;
    $("clear").hidden = false;
    setStatus(`Classifying ${list.length} image${list.length > 1 ? "s" : ""}...`, "busy");
    const cards = list.map((f) => {
      const li = card(f);
      $("results").prepend(li);
      return li;
    });
    let failed = 0;
    for (let i = 0; i < list.length; i++) {
      const li = cards[i];
      try {
        const r = await window.bincls.classify(list[i]);
        Object.assign(li.dataset, { className: r.class_name, p1: String(r.p_class1), ood: String(r.ood) });
        li.querySelector(".result-body").append(answerView(r));
      } catch (err) {
        failed++;
        li.dataset.error = err.message;
        const p = document.createElement("p");
        p.className = "error";
        p.textContent = err.message;
        li.querySelector(".result-body").append(p);
      }
    }
    const done = list.length - failed;
    setStatus(`${done} image${done === 1 ? "" : "s"} classified` +
      (failed ? `, ${failed} could not be read.` : "."), "ready");
  }

  function wireFiles() {
    const input = $("files");
    input.addEventListener("change", () => {
      classifyFiles(input.files);
      input.value = "";
    });
    const drop = $("drop");
    for (const ev of ["dragenter", "dragover"]) {
      drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
    }
    for (const ev of ["dragleave", "drop"]) {
      drop.addEventListener(ev, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      classifyFiles(e.dataTransfer.files);
    });
    document.addEventListener("paste", (e) => classifyFiles(e.clipboardData ? e.clipboardData.files : []));
    $("clear").addEventListener("click", () => {
      $("results").replaceChildren();
      $("clear").hidden = true;
    });
  }

  let stream = null;
  async function liveLoop() {
    const video = $("video");
    while (stream) {
      if (video.readyState >= 2 && video.videoWidth) {
        try {
          const r = await window.bincls.classifyFrame(video);
          $("live-answer").replaceChildren(answerView(r));
        } catch (err) {
          $("live-answer").textContent = err.message;
        }
      }
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
  }

  function wireCamera() {
    $("camera").addEventListener("click", async () => {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        setStatus("This browser gives no webcam to this page (it needs https, localhost or a file).");
        return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
      } catch (err) {
        setStatus(`No webcam: ${err.message || err.name}`);
        return;
      }
      const video = $("video");
      video.srcObject = stream;
      await video.play();
      $("live").hidden = false;
      $("camera").hidden = true;
      liveLoop();
    });
    $("camera-stop").addEventListener("click", () => {
      if (stream) stream.getTracks().forEach((t) => t.stop());
      stream = null;
      $("live").hidden = true;
      $("camera").hidden = false;
    });
  }

  aboutModel();
  wireFiles();
  wireCamera();
  window.bincls.ready().then(
    () => setStatus("Ready.", "ready"),
    (err) => setStatus(`The model could not be loaded: ${err.message || err}`, "error"),
  );
})();
