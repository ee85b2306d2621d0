/* Marketo gateway identify module: hidden Forms 2.0 submission and associateLead. */
/* gateway.js loads it from /v1/identify.js on the first identify that needs Marketo, so the */
/* page views and tracks of every other visit never download it. Served minified like the */
/* library (.ci/build-js); the route wraps it with the standard REST -> SOAP field table. */
(function (window, standardFields) {
  'use strict';

  const gateway = window.gateway;
  if (!gateway || gateway.identifyInMarketo) {
    return;
  }
  let formReady;

  // Called by gateway.js when the visitor withdraws consent: removes its first-party cookies
  // and Munchkin's _mkto_trk for the host and every parent domain (an empty domain attribute is
  // ignored, which removes the host-only cookie).
  gateway.dropCookies = () => {
    const parts = location.hostname.split('.');
    for (const name of ['gw_aid', 'gw_uid', '_mkto_trk']) {
      [...parts, 0].forEach((_, i) => {
        document.cookie = name + '=; path=/; max-age=0; domain=' + parts.slice(i).join('.');
      });
    }
  };

  // Called by gateway.js with its config and helpers, then identify's own arguments.
  gateway.identifyInMarketo = (config, cookie, later, munchkin, post, warn, safe, loadScript, id, traits, options) => {
    // Resolves to our hidden form once Forms 2.0 has it ready.
    function startForm() {
      const base = config.formBaseUrl;
      const element = document.createElement('form');
      element.id = 'mktoForm_' + config.formId;
      element.style.display = 'none';
      (document.body || document.documentElement).appendChild(element);
      return new Promise((resolve) => {
        const start = safe(() => {
          const forms = window.MktoForms2;
          if (!forms) {
            return warn('Forms 2.0 is unavailable');
          }
          forms.loadForm(base, config.munchkinId, config.formId);
          forms.whenReady(
            safe((form) => {
              // Only our hidden form: other forms on the page must never be submitted by us.
              if (resolve && String(form.getId()) === String(config.formId)) {
                form.onSuccess(() => false);
                resolve(form);
                resolve = null;
              }
            })
          );
        });
        // Reuse Forms 2.0 when the site already loads it for its own forms.
        (window.MktoForms2 ? Promise.resolve() : loadScript(base + '/js/forms2/js/forms2.min.js')).then(start);
      });
    }

    function submitForm(fields) {
      formReady = formReady || startForm();
      formReady.then((form) =>
        later(() => {
          fields._mkt_trk = cookie('_mkto_trk');
          form.addHiddenFields(fields);
          form.submit();
        })
      );
    }

    // Traits to Marketo SOAP field names (first non-empty value wins): the standard fields and
    // Segment's aliases of them, then the site's custom traits from the loader's config.
    function soapFields() {
      const fields = {};
      const map = { ...standardFields, ...config.fieldMap };
      const name = /^\s*(\S+)\s*(.*)$/.exec(traits.name || '');
      for (const path in map) {
        const value = path.split('.').reduce((parent, key) => parent?.[key], traits);
        if (value != null && value !== '' && typeof value != 'object' && fields[map[path]] == null) {
          fields[map[path]] = value;
        }
      }
      if (name) {
        fields.FirstName = fields.FirstName || name[1];
        if (name[2] && !fields.LastName) {
          fields.LastName = name[2];
        }
      }
      if (!fields.Email && /@/.test(id)) {
        fields.Email = id;
      }
      return fields;
    }

    function associate(fields, token) {
      post('hash', JSON.stringify({ k: config.writeKey, token }))
        .then((response) => response.json())
        .then(
          safe((answer) => {
            if (!answer.hash) {
              return warn('identity token refused: ' + answer.error?.code);
            }
            fields.Email = answer.email;
            munchkin('associateLead', fields, answer.hash);
          })
        )
        .catch(() => {});
    }

    const fields = soapFields();
    if (config.identifyMode == 'form' && fields.Email) {
      submitForm(fields);
    } else if (config.identifyMode == 'associate_lead' && options?.identityToken) {
      associate(fields, options.identityToken);
    }
  };
})(window, typeof STANDARD_FIELDS === 'object' ? STANDARD_FIELDS : {});
