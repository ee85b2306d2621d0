/* Stand-in for Marketo's forms2.min.js, served by the fake Marketo (the demo, browser tests): the
   Forms 2.0 calls the gateway uses, posting hidden fields to the host it came from, which applies
   them as a form fill. Written for this project; it shares no code with Marketo's script. */
(function () {
  var script = document.currentScript;
  var origin = script ? new URL(script.src).origin : '';
  var log = (window.__forms2 = window.__forms2 || []);
  var ready = [];
  var waiting = [];

  function makeForm(base, munchkinId, formId, element) {
    var hidden = {};
    var successHandlers = [];
    var form = {
      getId: function () { return formId; },
      getFormElem: function () { return element; },
      addHiddenFields: function (fields) {
        for (var name in fields) { hidden[name] = fields[name]; }
      },
      vals: function () { return Object.assign({}, hidden); },
      getValues: function () { return Object.assign({}, hidden); },
      onSuccess: function (cb) { successHandlers.push(cb); return form; },
      submit: function () {
        var body = new URLSearchParams();
        for (var name in hidden) { body.append(name, hidden[name] == null ? '' : String(hidden[name])); }
        body.append('formid', String(formId));
        body.append('munchkinId', munchkinId);
        log.push({ event: 'submit', formId: formId, fields: form.vals() });
        fetch(origin + '/index.php/leadCapture/save2', { method: 'POST', body: body })
          .then(function (r) { return r.json(); })
          .then(function (answer) {
            var stay = false;
            for (var i = 0; i < successHandlers.length; i++) {
              if (successHandlers[i](form.vals(), answer.followUpUrl) === false) { stay = true; }
            }
            log.push({ event: 'success', formId: formId, navigated: !stay });
            window.__forms2Done = (window.__forms2Done || 0) + 1;
            if (!stay) { location.href = answer.followUpUrl; }
          });
        return form;
      }
    };
    return form;
  }

  window.MktoForms2 = {
    loadForm: function (base, munchkinId, formId, callback) {
      log.push({ event: 'loadForm', base: base, munchkinId: munchkinId, formId: formId });
      var element = document.getElementById('mktoForm_' + formId);
      if (!element) { throw new Error('no <form id="mktoForm_' + formId + '"> on the page'); }
      // Like the real script, the descriptor arrives later: ready fires asynchronously.
      setTimeout(function () {
        var form = makeForm(base, munchkinId, formId, element);
        ready.push(form);
        if (callback) { callback(form); }
        for (var i = 0; i < waiting.length; i++) { waiting[i](form); }
      }, 10);
    },
    whenReady: function (cb) {
      waiting.push(cb);
      for (var i = 0; i < ready.length; i++) { cb(ready[i]); }
    }
  };
})();
