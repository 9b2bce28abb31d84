/** @odoo-module **/
// An anonymous visitor: pricing page, a plan, the sign-up form, "check your inbox".
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("saas_signup_tour", {
    steps: () => [
        { content: "the plans are shown", trigger: ".o_saas_plan" },
        { content: "switch to yearly", trigger: ".o_saas_period a:contains(Yearly)", run: "click" },
        { content: "yearly prices", trigger: ".o_saas_plan:contains(/ year)" },
        {
            content: "start the popular plan's trial",
            trigger: ".o_saas_plan.border-primary .o_saas_choose",
            run: "click",
        },
        { content: "company", trigger: "input[name=company_name]", run: "edit Tour Company" },
        { content: "e-mail", trigger: "input[name=email]", run: "edit tour@example.com" },
        { content: "subdomain", trigger: "input[name=subdomain]", run: "edit signup-tour" },
        { content: "it is free", trigger: ".o_saas_availability:contains(Available)" },
        { content: "a template", trigger: ".o_saas_template", run: "click" },
        { content: "terms", trigger: "input[name=terms]", run: "click" },
        { content: "send", trigger: "button[type=submit]:contains(Create my Odoo)", run: "click" },
        { content: "the mail is on its way", trigger: ".o_saas_signup_sent:contains(Check your inbox)" },
    ],
});

registry.category("web_tour.tours").add("saas_portal_instances_tour", {
    steps: () => [
        { content: "the portal lists the instance", trigger: ".o_saas_portal_instance:contains(signup-tour)" },
    ],
});
