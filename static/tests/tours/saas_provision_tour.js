/** @odoo-module **/
// Provision from the instance form: the form turns Active by itself (bus notification,
// no reload), and the Operations tab shows the provisioning with its steps.
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("saas_manager_provision_tour", {
    steps: () => [
        {
            content: "a draft instance",
            trigger: ".o_form_view .o_statusbar_status button.o_arrow_button_current:contains(Draft)",
        },
        {
            content: "provision it",
            trigger: ".o_form_view .o_statusbar_buttons button[name=action_provision]",
            run: "click",
        },
        {
            content: "queued: the form says it is provisioning",
            trigger: ".o_form_view .alert-info:contains(Provisioning)",
        },
        {
            content: "the form turns Active by itself",
            trigger: ".o_form_view .o_statusbar_status button.o_arrow_button_current:contains(Active)",
            timeout: 60000,
        },
        {
            content: "open the Operations tab",
            trigger: ".o_form_view .o_notebook a.nav-link:contains(Operations)",
            run: "click",
        },
        {
            content: "the provisioning operation, done: open its steps",
            trigger: ".o_field_widget[name=operation_ids] .o_data_row:contains(Provisioning):contains(Done) button[name=action_view_steps]",
            run: "click",
        },
        {
            content: "its steps, each timed",
            trigger: ".modal .o_field_widget[name=step_ids] .o_data_row:contains(clone) ~ .o_data_row:contains(customize) ~ .o_data_row:contains(proxy)",
        },
    ],
});
