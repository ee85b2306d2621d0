/* Marketo gateway TCF module: reads the visitor's choice from an IAB TCF v2 consent manager. */
/* gateway.js loads it from /v1/tcf.js when the page has window.__tcfapi and the site asks for */
/* consent, so pages without one never download it. Served minified like the library */
/* (.ci/build-js); the route wraps it with the site's purpose map (consent.tcf_purposes). */
(function (window, purposes) {
  'use strict';

  const gateway = window.gateway;
  // Listen once per page, however often the module runs.
  if (!gateway || gateway.readsTcf) {
    return;
  }
  gateway.readsTcf = true;

  // The manager calls back at once with its state and again after every change. Only two
  // states carry a decision: the stored choice was loaded (tcloaded) or the visitor just made
  // one (useractioncomplete). Others (cmpuishown: the banner is up) leave the decision pending.
  const listener = (tcData, success) => {
    const status = tcData?.eventStatus;
    if (!success || (status != 'tcloaded' && status != 'useractioncomplete')) {
      return;
    }
    const consents = tcData.purpose?.consents || {};
    const choice = {};
    for (const category in purposes) {
      // A category is granted when every purpose it needs has the visitor's consent; the
      // manager saying GDPR does not apply to this visitor leaves nothing to ask.
      choice[category] =
        tcData.gdprApplies === false || purposes[category].every((id) => consents[id] === true);
    }
    // The same call as the page's own gateway.consent: a refusal after consent withdraws it.
    gateway.consent(choice);
  };

  try {
    window.__tcfapi('addEventListener', 2, listener);
  } catch (e) {
    console.warn('gateway: __tcfapi failed', e);
  }
})(window, typeof TCF_PURPOSES === 'object' ? TCF_PURPOSES : {});
